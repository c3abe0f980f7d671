"""espeak-ng as an embedded streaming synthesizer, driven through ctypes.

The library and its voice data come from the ``espeakng-loader`` wheel (``libespeak-ng.so`` and
``espeak-ng-data``), so nothing is downloaded at run time.

espeak-ng is one global C library per process, and this module treats it that way:

* it is initialised once, on first use, in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode;
* voice and rate are process-wide settings, re-applied at the start of each call when the
  calling `EspeakSynthesizer` wants different ones;
* **only one synthesis runs at a time per process.** A second `synthesize()` waits (up to
  ``busy_timeout_s``) until the first generator is exhausted or closed. Close generators you
  abandon (``gen.close()``, or drop the last reference) or the next call times out.

How a call streams: ``espeak_Synth`` runs in a worker thread and calls back every ~60 ms of
audio with int16 samples at espeak's native rate (22 050 Hz) and the events that fall in them.
The callback hands each buffer through a bounded queue to the generator, which resamples to
16 kHz with one `soxr.ResampleStream` per call (so chunk edges do not click) and times the words
(`ChunkAssembler`). The queue holds `_QUEUE_BUFFERS` buffers, so espeak runs at most ~0.5 s of
audio ahead of the consumer: the first chunk is always yielded before a long text is finished,
and closing the generator aborts synthesis (the callback returns 1) within one buffer.

Word positions come from espeak's word events: ``text_position`` (1-based character index into
the input) and ``sample`` (index of the word's first sample at the engine rate, counted from the
call's first sample), scaled by 16000 / engine rate. Both were checked against the audio on this
library build (tests/components/test_tts.py).
"""

from __future__ import annotations

import ctypes
import queue
import re
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.tts.base import TtsChunk, WordTiming


class EspeakUnavailableError(ImportError):
    """libespeak-ng or its data could not be loaded; the message names the fix."""


class EspeakError(RuntimeError):
    """espeak-ng failed during synthesis, or is busy with another synthesis for too long."""


# --- espeak-ng's public API (speak_lib.h), the parts used here -----------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() on missing data
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # add the sentence-final pause at the end of the text
_EE_OK = 0
_PARAM_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1

RATE_MIN_WPM = 80
"""Slowest rate espeak-ng accepts (``espeakRATE_MINIMUM`` in speak_lib.h)."""
RATE_MAX_WPM = 450
"""Fastest rate espeak-ng accepts (``espeakRATE_MAXIMUM`` in speak_lib.h)."""
RATE_DEFAULT_WPM = 175
"""espeak-ng's normal rate (``espeakRATE_NORMAL`` in speak_lib.h)."""

ENGINE_BUFFER_MS = 50
"""Audio per synth callback, fixed at initialisation (espeak-ng delivers ~60 ms)."""


class _EventId(ctypes.Union):
    _fields_ = (
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    )


class _Event(ctypes.Structure):
    """``espeak_EVENT``; 40 bytes on LP64."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


# --- the pure core: engine buffers + word events → 16 kHz chunks with word timings ----------


@dataclass(frozen=True, slots=True)
class WordEvent:
    """One espeak-ng word event.

    Attributes:
        text_position: 1-based character (code point) index into the input text where espeak
            says the word starts.
        sample: the word's first sample at the engine rate, counted from the call's first sample.
    """

    text_position: int
    sample: int


@dataclass(slots=True)
class _OpenWord:
    """A word whose start is known but whose end waits for the next word event."""

    first_token: int
    start_engine_sample: int


_SILENCE_LEVEL = 64
"""|sample| at or below this (−54 dBFS) counts as silence when trimming a word's trailing pause."""


class ChunkAssembler:
    """Turns espeak's engine-rate buffers and word events into 16 kHz `TtsChunk`s.

    A pure, synchronous core: no library, no threads. Feed every callback buffer with `push`,
    then call `finish` once.

    Words. The input is split into whitespace-delimited tokens; each word event claims the token
    containing its ``text_position``. A word's ``text`` is the input as written from its token to
    the token before the next claimed one, punctuation included, so tokens espeak gives no event
    (a lone dash) stay with their neighbour and ``" ".join(w.text ...)`` reproduces the input up to
    whitespace. Extra events inside one token ("42" is spoken as two words) are ignored. A word
    starts at its event's sample and ends at the next word's start or the end of the audio, minus
    any trailing silence (the pause after a sentence is not part of its last word). Text for
    which espeak reports no word event at all (only punctuation) gets no timings.

    Chunks. Each non-empty resampled buffer becomes one chunk, carrying the words whose start
    falls in it. A chunk is held back until the ends of its words are known, i.e. until the
    next word event arrives: one word of look-ahead in engine time (a fraction of a millisecond
    of compute for espeak), not in audio time.

    Args:
        text: the text given to espeak.
        engine_rate_hz: espeak's output sample rate (22 050 Hz).
    """

    def __init__(self, text: str, engine_rate_hz: int) -> None:
        try:
            import soxr
        except ImportError as exc:  # pragma: no cover - soxr is a core dependency
            raise ImportError("resampling TTS audio needs soxr: pip install soxr") from exc
        if engine_rate_hz <= 0:
            raise ValueError(f"engine_rate_hz must be positive, got {engine_rate_hz}")
        self._text = text
        self._token_spans = [m.span() for m in re.finditer(r"\S+", text)]
        self._token_ends = [end for _, end in self._token_spans]
        self._scale = SAMPLE_RATE_HZ / engine_rate_hz
        self._resampler = soxr.ResampleStream(engine_rate_hz, SAMPLE_RATE_HZ, 1, dtype="int16")
        self._engine_samples = 0
        # Engine audio since the open word's start, for trimming its trailing silence.
        self._history: deque[tuple[int, Pcm16]] = deque()
        self._out_samples = 0
        self._pending: deque[tuple[int, Pcm16]] = deque()  # (first 16 kHz sample, audio)
        self._open: _OpenWord | None = None
        self._closed: deque[WordTiming] = deque()
        self._next_token = 0
        self._finished = False

    def push(self, audio: Pcm16, events: Sequence[WordEvent]) -> list[TtsChunk]:
        """Add one engine buffer and the word events that fall in it.

        Args:
            audio: int16, shape ``(num_samples,)``, at ``engine_rate_hz``; may be empty.
            events: this buffer's word events, in order.

        Returns:
            The chunks that became complete (possibly none), in order.

        Raises:
            RuntimeError: called after `finish`.
            ValueError: ``audio`` is not 1-D int16.
        """
        if self._finished:
            raise RuntimeError("ChunkAssembler.push() after finish(); make a new assembler")
        if audio.dtype != np.int16 or audio.ndim != 1:
            raise ValueError(
                f"engine audio must be 1-D int16, got {audio.dtype} with shape {audio.shape}"
            )
        if audio.size:
            self._history.append((self._engine_samples, audio))
            self._engine_samples += audio.size
        for event in events:
            self._on_word(event)
        self._append_output(self._resampler.resample_chunk(audio))
        return self._release(final=False)

    def finish(self) -> list[TtsChunk]:
        """Flush the resampler and time the last word; returns the remaining chunks.

        Raises:
            RuntimeError: called twice.
        """
        if self._finished:
            raise RuntimeError("ChunkAssembler.finish() called twice")
        self._finished = True
        self._append_output(self._resampler.resample_chunk(np.zeros(0, np.int16), last=True))
        if self._open is not None:
            self._close_open(self._engine_samples, len(self._token_spans) - 1)
        total = self._out_samples
        self._closed = deque(
            WordTiming(w.text, min(w.start_sample, total), min(w.end_sample, total))
            for w in self._closed
        )
        return self._release(final=True)

    def _on_word(self, event: WordEvent) -> None:
        token = bisect_right(self._token_ends, event.text_position - 1)
        if token >= len(self._token_spans) or token < self._next_token:
            return
        sample = min(max(event.sample, 0), self._engine_samples)
        if self._open is None:
            first = self._next_token  # leading tokens without an event join the first word
        else:
            sample = max(sample, self._open.start_engine_sample)
            self._close_open(sample, token - 1)
            first = token
        self._open = _OpenWord(first, sample)
        self._next_token = token + 1
        while self._history and self._history[0][0] + self._history[0][1].size <= sample:
            self._history.popleft()

    def _close_open(self, end_engine_sample: int, last_token: int) -> None:
        assert self._open is not None
        start = self._open.start_engine_sample
        end = self._last_sound_end(start, end_engine_sample)
        begin_char = self._token_spans[self._open.first_token][0]
        end_char = self._token_spans[max(last_token, self._open.first_token)][1]
        start_16k = round(start * self._scale)
        end_16k = max(start_16k, round(end * self._scale))
        self._closed.append(WordTiming(self._text[begin_char:end_char], start_16k, end_16k))
        self._open = None

    def _last_sound_end(self, start: int, end: int) -> int:
        """One past the last non-silent engine sample in ``[start, end)``; ``start`` if none."""
        for first, audio in reversed(self._history):
            lo, hi = max(start, first), min(end, first + audio.size)
            if lo >= hi:
                continue
            loud = np.flatnonzero(np.abs(audio[lo - first : hi - first]) > _SILENCE_LEVEL)
            if loud.size:
                return lo + int(loud[-1]) + 1
        return start

    def _append_output(self, audio: Pcm16) -> None:
        if audio.size:
            self._pending.append((self._out_samples, np.ascontiguousarray(audio, np.int16)))
            self._out_samples += audio.size

    def _release(self, *, final: bool) -> list[TtsChunk]:
        chunks: list[TtsChunk] = []
        while self._pending:
            first, audio = self._pending[0]
            end = first + audio.size
            open_start = None if self._open is None else self._open.start_engine_sample
            if not final and open_start is not None and round(open_start * self._scale) < end:
                break  # a word starting here has no end yet
            self._pending.popleft()
            last = final and not self._pending
            words: list[WordTiming] = []
            while self._closed and (last or self._closed[0].start_sample < end):
                words.append(self._closed.popleft())
            chunks.append(TtsChunk(audio, tuple(words)))
        if final and self._closed:  # no audio left to carry them (cannot happen with soxr's tail)
            chunks.append(TtsChunk(np.zeros(0, np.int16), tuple(self._closed)))
            self._closed.clear()
        return chunks


# --- the library: loaded and initialised once per process ---------------------------------


@dataclass(slots=True)
class _Engine:
    lib: ctypes.CDLL
    sample_rate_hz: int
    data_path: str
    voice: str | None = None
    rate_wpm: int | None = None

    def configure(self, voice: str, rate_wpm: int) -> None:
        """Apply voice and rate if they differ from the current ones (hold `_SYNTH_LOCK`).

        Raises:
            ValueError: espeak-ng has no such voice.
            EspeakError: espeak-ng refused the rate.
        """
        if voice != self.voice:
            status = self.lib.espeak_SetVoiceByName(voice.encode())
            if status != _EE_OK:
                self.voice = None
                raise ValueError(
                    f"espeak-ng has no voice {voice!r} (status {status}); voice names are the "
                    f"file names under {Path(self.data_path) / 'lang'}, e.g. 'en-us', 'en', "
                    "'en-gb-x-rp', 'de', 'fr'"
                )
            self.voice = voice
            self.rate_wpm = None  # a voice change may reset the rate
        if rate_wpm != self.rate_wpm:
            status = self.lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
            if status != _EE_OK:
                raise EspeakError(f"espeak-ng refused rate {rate_wpm} wpm (status {status})")
            self.rate_wpm = rate_wpm


def _load_engine() -> _Engine:
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EspeakUnavailableError(
            "espeak-ng TTS needs the espeakng-loader package (it carries libespeak-ng and its "
            "voice data): pip install espeakng-loader"
        ) from exc
    try:
        lib_path = str(espeakng_loader.get_library_path())
        data_path = str(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(lib_path)
    except (OSError, RuntimeError) as exc:
        raise EspeakUnavailableError(
            f"could not load libespeak-ng from the espeakng-loader package ({exc}); reinstall "
            "it: pip install --force-reinstall espeakng-loader"
        ) from exc
    lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = (_SynthCallback,)
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    )
    lib.espeak_Synth.restype = ctypes.c_int
    sample_rate_hz = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, ENGINE_BUFFER_MS, data_path.encode(), _INITIALIZE_DONT_EXIT
    )
    if sample_rate_hz <= 0:
        raise EspeakUnavailableError(
            f"espeak-ng could not initialise with its data at {data_path}; reinstall it: "
            "pip install --force-reinstall espeakng-loader"
        )
    lib.espeak_SetSynthCallback(_CALLBACK)
    return _Engine(lib, int(sample_rate_hz), data_path)


@dataclass(frozen=True, slots=True)
class _Buffer:
    audio: Pcm16
    words: tuple[WordEvent, ...]


@dataclass(slots=True)
class _Job:
    """One synthesis call, as seen by the C callback."""

    buffers: queue.Queue[_Buffer | None] = field(
        default_factory=lambda: queue.Queue(maxsize=_QUEUE_BUFFERS)
    )
    cancelled: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


_QUEUE_BUFFERS = 8
"""Engine buffers (~60 ms each) espeak may run ahead of the consumer before it waits."""

_LOAD_LOCK = threading.Lock()
_SYNTH_LOCK = threading.Lock()
"""Held for the whole life of a synthesis; released when its generator ends or is closed."""
_engine: _Engine | None = None
_job: _Job | None = None
_EMPTY_PCM: Pcm16 = np.zeros(0, np.int16)


def _engine_instance() -> _Engine:
    global _engine
    with _LOAD_LOCK:
        if _engine is None:
            _engine = _load_engine()
        return _engine


def _on_synth(
    wav: ctypes._Pointer[ctypes.c_short],
    num_samples: int,
    events: ctypes._Pointer[_Event],
) -> int:
    """espeak's synth callback, on the worker thread. Returns 1 to abort synthesis."""
    job = _job
    if job is None or job.cancelled.is_set():
        return 1
    try:
        audio = _EMPTY_PCM
        if wav and num_samples > 0:
            audio = np.ctypeslib.as_array(wav, shape=(num_samples,)).astype(np.int16, copy=True)
        words: list[WordEvent] = []
        if events:
            index = 0
            while (event := events[index]).type != _EVENT_LIST_TERMINATED:
                if event.type == _EVENT_WORD:
                    words.append(WordEvent(event.text_position, event.sample))
                index += 1
        job.buffers.put(_Buffer(audio, tuple(words)))  # waits while the consumer is behind
    except BaseException as exc:  # never let an exception unwind into C
        job.error = exc
        return 1
    return 1 if job.cancelled.is_set() else 0


_CALLBACK = _SynthCallback(_on_synth)
"""Kept at module level: the C library holds a raw pointer to it for the process lifetime."""


def _run_synth(engine: _Engine, job: _Job, data: bytes, flags: int) -> None:
    try:
        status = engine.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        if status != _EE_OK and job.error is None and not job.cancelled.is_set():
            job.error = EspeakError(f"espeak_Synth returned status {status}")
    except BaseException as exc:
        job.error = exc
    finally:
        job.buffers.put(None)


def _acquire(timeout_s: float) -> None:
    if not _SYNTH_LOCK.acquire(timeout=timeout_s):
        raise EspeakError(
            f"espeak-ng is still busy with another synthesis after {timeout_s} s; only one runs "
            "per process: exhaust or close() the previous synthesize() generator first"
        )


class EspeakSynthesizer:
    """Streaming espeak-ng TTS: int16 16 kHz mono chunks with word timings.

    One synthesis at a time per process (espeak-ng is a global C library); see the module
    docstring. Instances are cheap; voice and rate are applied per call.

    Args:
        voice: espeak-ng voice name, e.g. ``"en-us"``.
        rate_wpm: speaking rate in words per minute, `RATE_MIN_WPM`..`RATE_MAX_WPM`.
        sentence_pause: end each call's audio with espeak's sentence pause, so consecutive
            sentences synthesized one call each do not run together.
        busy_timeout_s: how long `synthesize` waits for another synthesis in this process to
            finish before raising `EspeakError`.

    Raises:
        EspeakUnavailableError: the library or its data cannot be loaded.
        ValueError: unknown voice, or rate / timeout out of range.
    """

    name = "espeak"

    def __init__(
        self,
        voice: str = "en-us",
        rate_wpm: int = RATE_DEFAULT_WPM,
        *,
        sentence_pause: bool = True,
        busy_timeout_s: float = 10.0,
    ) -> None:
        if not RATE_MIN_WPM <= rate_wpm <= RATE_MAX_WPM:
            raise ValueError(
                f"rate_wpm={rate_wpm} is outside espeak-ng's range; use "
                f"{RATE_MIN_WPM}..{RATE_MAX_WPM} words per minute"
            )
        if busy_timeout_s < 0:
            raise ValueError(f"busy_timeout_s must be >= 0, got {busy_timeout_s}")
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.sentence_pause = sentence_pause
        self.busy_timeout_s = busy_timeout_s
        self._engine = _engine_instance()
        _acquire(busy_timeout_s)
        try:
            self._engine.configure(voice, rate_wpm)  # fail now on an unknown voice
        finally:
            _SYNTH_LOCK.release()

    @property
    def engine_sample_rate_hz(self) -> int:
        """espeak-ng's native output rate (22 050 Hz), before resampling to 16 kHz."""
        return self._engine.sample_rate_hz

    def synthesize(self, text: str) -> Generator[TtsChunk, None, None]:
        """Yield int16 16 kHz mono chunks while espeak-ng synthesizes ``text``.

        Word timings are in 16 kHz samples from the call's first sample; each word rides on the
        chunk in which it starts. Closing the generator early (barge-in) aborts synthesis within
        one engine buffer; the next call works normally. Whitespace-only text yields nothing.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: ``text`` contains a NUL character.
            EspeakError: (on iteration) synthesis failed, or another synthesis held espeak-ng
                for longer than ``busy_timeout_s``.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if "\x00" in text:
            raise ValueError("text contains a NUL character; espeak-ng would stop reading there")
        return self._stream(text)

    def _stream(self, text: str) -> Generator[TtsChunk, None, None]:
        global _job
        if not text.strip():
            return
        _acquire(self.busy_timeout_s)
        job = _Job()
        worker: threading.Thread | None = None
        drained = False
        try:
            self._engine.configure(self.voice, self.rate_wpm)
            assembler = ChunkAssembler(text, self._engine.sample_rate_hz)
            flags = _CHARS_UTF8 | (_ENDPAUSE if self.sentence_pause else 0)
            _job = job
            worker = threading.Thread(
                target=_run_synth,
                args=(self._engine, job, text.encode("utf-8") + b"\x00", flags),
                name="earshot-espeak",
                daemon=True,
            )
            worker.start()
            while (buffer := job.buffers.get()) is not None:
                yield from assembler.push(buffer.audio, buffer.words)
            drained = True
            if job.error is not None:
                raise EspeakError(f"espeak-ng synthesis failed: {job.error!r}") from job.error
            yield from assembler.finish()
        finally:
            job.cancelled.set()  # the callback returns 1 (abort) from its next call
            if worker is not None:
                while not drained:  # unblock a callback waiting on the full queue
                    drained = job.buffers.get() is None
                worker.join()
            _job = None
            _SYNTH_LOCK.release()
