"""Deterministic stand-ins for every stage backend, for tests of the whole loop.

Each fake implements its stage's protocol exactly (`VoiceActivityDetector`,
`StreamingRecognizer` (+ `SupportsPauseHints`), `LanguageModel`, `Synthesizer`), does no real
inference, and can be told to fail. With `earshot.clock.SimulatedClock(charge_compute=False)`
every mark of a run on fakes is an exact function of the script, so a loop test runs in
milliseconds and asserts to the millisecond.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, samples_to_ms
from earshot.clock import Clock
from earshot.llm.base import ChatMessage, LlmError
from earshot.stt.base import Transcript, WordSegment
from earshot.tts.base import TtsChunk, WordTiming


class EnergyVad:
    """Speech probability from frame energy: 1.0 when the RMS is at or above ``threshold``
    (int16 units), else 0.0. Pairs with `earshot.testing.transport.SyntheticCaller`'s tones.

    Args:
        threshold: RMS (int16 units) from which a frame is speech.
        fail_on_call: 0-based call indices on which `speech_probability` raises RuntimeError.
    """

    name = "fake energy VAD"

    def __init__(self, threshold: float = 300.0, fail_on_call: Sequence[int] = ()) -> None:
        self.threshold = threshold
        self.fail_on_call = frozenset(fail_on_call)
        self.calls = 0

    def speech_probability(self, frame: Pcm16) -> float:
        i, self.calls = self.calls, self.calls + 1
        if i in self.fail_on_call:
            raise RuntimeError(f"fake VAD failure on call {i}")
        if frame.size == 0:
            return 0.0
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        return 1.0 if rms >= self.threshold else 0.0

    def reset(self) -> None:
        self.calls = 0


class ScriptedVad:
    """Speech probability from a script of voiced spans in stream time.

    Frames are counted as they come (each is ``len(frame)`` samples of stream time from 0).
    A frame is speech (1.0) when its midpoint falls in one of ``speech_ms`` (start, end) spans.
    """

    name = "fake scripted VAD"

    def __init__(self, speech_ms: Sequence[tuple[float, float]]) -> None:
        self.speech_ms = tuple(speech_ms)
        self._pos = 0

    def speech_probability(self, frame: Pcm16) -> float:
        mid_ms = samples_to_ms(self._pos + len(frame) / 2)
        self._pos += len(frame)
        return 1.0 if any(a <= mid_ms < b for a, b in self.speech_ms) else 0.0

    def reset(self) -> None:
        self._pos = 0


class FakeStt:
    """Returns scripted transcripts, one per user turn, in order.

    Partials reveal the turn's words in proportion to the audio pushed (one word per
    ``ms_per_word`` of audio). It also implements `SupportsPauseHints` and records the hints.

    Args:
        transcripts: the text of turn 1, 2, ...; past the end, ``default``.
        ms_per_word: audio per revealed word in partials.
        fail_on_turn: 1-based turns whose `finish` raises RuntimeError.
        decode_ms: reported as `Transcript.decode_ms` of every final.
    """

    name = "fake STT"

    def __init__(
        self,
        transcripts: Sequence[str] = (),
        *,
        default: str = "hello there",
        ms_per_word: float = 250.0,
        fail_on_turn: Sequence[int] = (),
        decode_ms: tuple[float, ...] = (),
    ) -> None:
        self.transcripts = list(transcripts)
        self.default = default
        self.ms_per_word = ms_per_word
        self.fail_on_turn = frozenset(fail_on_turn)
        self.decode_ms = decode_ms
        self.turns = 0
        self.pauses: list[float] = []
        self.resumes = 0
        self._audio_ms = 0.0

    def _text(self) -> str:
        i = self.turns - 1
        return self.transcripts[i] if 0 <= i < len(self.transcripts) else self.default

    def start(self) -> None:
        self.turns += 1
        self._audio_ms = 0.0

    def push_audio(self, pcm: Pcm16) -> str:
        self._audio_ms += samples_to_ms(len(pcm))
        words = self._text().split()
        return " ".join(words[: int(self._audio_ms // self.ms_per_word)])

    def finish(self) -> Transcript:
        if self.turns in self.fail_on_turn:
            raise RuntimeError(f"fake STT failure on turn {self.turns}")
        text = self._text()
        step = self._audio_ms / max(1, len(text.split()))
        words = tuple(WordSegment(w, i * step, (i + 1) * step) for i, w in enumerate(text.split()))
        return Transcript(text, words, decode_ms=self.decode_ms)

    def speech_paused(self, audio_ms: float) -> None:
        self.pauses.append(audio_ms)

    def speech_resumed(self) -> None:
        self.resumes += 1


@dataclass(frozen=True, slots=True)
class LlmScript:
    """How `FakeLlm` answers one turn.

    Attributes:
        text: the reply, streamed one word (with its trailing space) per token.
        ttft_ms: delay before the first token (ms of session clock).
        token_ms: delay between tokens.
        fail_after_tokens: raise after this many tokens (0: before the first), or None.
        error: the exception raised (default `LlmError`).
        stall: after the tokens (or at ``fail_after_tokens``), wait forever instead.
    """

    text: str = "Sure, I can help with that. What else would you like to know?"
    ttft_ms: float = 200.0
    token_ms: float = 20.0
    fail_after_tokens: int | None = None
    error: Exception | None = None
    stall: bool = False


@dataclass(slots=True)
class FakeLlm:
    """A streamed chat model that follows a script per turn (always labelled simulated).

    Args:
        clock: the session clock its delays run on.
        scripts: the script of call 1, 2, ...; past the end, ``default``.
        default: the script used when ``scripts`` runs out.
    """

    clock: Clock
    scripts: list[LlmScript] = field(default_factory=list)
    default: LlmScript = field(default_factory=LlmScript)
    name: str = "fake LLM"
    simulated: bool = True
    calls: list[list[ChatMessage]] = field(default_factory=list)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        i = len(self.calls)
        self.calls.append(list(messages))
        script = self.scripts[i] if i < len(self.scripts) else self.default
        await self.clock.sleep_ms(script.ttft_ms)
        tokens = [w + " " for w in script.text.split()]
        for n, token in enumerate(tokens):
            if script.fail_after_tokens is not None and n == script.fail_after_tokens:
                break
            if n:
                await self.clock.sleep_ms(script.token_ms)
            yield token
        if script.stall:
            await asyncio.Event().wait()
        if script.fail_after_tokens is not None:
            raise script.error if script.error is not None else LlmError("fake LLM failure")


class FakeTts:
    """Deterministic speech: ``ms_per_char`` of a 440 Hz tone per character, one chunk per
    word, with exact word timings.

    Args:
        ms_per_char: audio per character of the text (ms).
        fail: predicate on (call index from 0, text) that makes `synthesize` raise
            RuntimeError before its first chunk.
        fail_mid: like ``fail``, but raises after the first chunk.
        reject_control_chars: raise ValueError on NUL or other control characters (as
            espeak-ng's C API does), so a test sees whether the text was sanitized.
    """

    name = "fake TTS"

    def __init__(
        self,
        ms_per_char: float = 60.0,
        *,
        fail: Callable[[int, str], bool] | None = None,
        fail_mid: Callable[[int, str], bool] | None = None,
        reject_control_chars: bool = True,
    ) -> None:
        self.ms_per_char = ms_per_char
        self.fail = fail
        self.fail_mid = fail_mid
        self.reject_control_chars = reject_control_chars
        self.texts: list[str] = []

    def synthesize(self, text: str) -> Generator[TtsChunk, None, None]:
        i = len(self.texts)
        self.texts.append(text)
        if self.reject_control_chars and any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ValueError("fake TTS: text holds a control character")
        if self.fail is not None and self.fail(i, text):
            raise RuntimeError(f"fake TTS failure on call {i}")
        pos = 0
        for n, word in enumerate(text.split()):
            num = round((len(word) + 1) * self.ms_per_char * SAMPLE_RATE_HZ / 1000)
            t = np.arange(pos, pos + num) / SAMPLE_RATE_HZ
            audio = (8000 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
            audio[audio == 0] = 1  # every sample audible: played positions are visible
            yield TtsChunk(audio, (WordTiming(word, pos, pos + num - num // 8),))
            pos += num
            if n == 0 and self.fail_mid is not None and self.fail_mid(i, text):
                raise RuntimeError(f"fake TTS failure mid-call {i}")
