"""One agent utterance: LLM → sentence chunker → TTS → jitter buffer, and its handle.

A response never dies silently. The LLM stream, each TTS call and the whole response are
guarded: an LLM that fails before any text is replaced by `earshot.llm.FALLBACK_LINE`; a
sentence the TTS cannot speak is recorded and skipped (the rest is spoken around it), and if
nothing at all could be synthesized the fallback line is tried; a response with no audio after
``no_audio_timeout_ms`` is recorded as failed and the fallback is spoken. Every failure is a
`ResponseFailed` event, logged and written into the turn record. Whatever happens, the
response's jitter-buffer entry is ended in ``finally``, so playout moves on to the next one.

A filler line in the LLM stream (`earshot.levers.filler.FillerText`, from a tool or the budget
policy) is spoken as a sentence of its own; when the answer's first audio is ready while it is
still queued, the runner cuts it at the next word boundary (`earshot.levers.filler.plan_cut`,
on a `CuttableSink`) and drops its unplayed words from the reply's words and text, so the
answer follows at once and the caller is remembered to have heard only what played.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from earshot.audio.frames import Pcm16, ms_to_samples
from earshot.clock import Clock
from earshot.levers.filler import FillerPlayback, FillerText, plan_cut
from earshot.llm import FALLBACK_LINE
from earshot.llm.base import ChatMessage, LanguageModel
from earshot.metrics.turn import TurnRecord
from earshot.session.tts_stream import stream_tts
from earshot.text.chunker import SentenceChunker
from earshot.text.sanitize import sanitize_for_tts
from earshot.tts.base import Synthesizer, WordTiming
from earshot.tts.heard import heard_text, offset_words

log = logging.getLogger("earshot.session")

Stage = Literal["llm", "tts", "no_audio", "internal"]


class AudioSink(Protocol):
    """Where a response's audio goes: the session's `earshot.playout.jitter.JitterBuffer`, or
    an endpoint that streams it to a client that owns playout (OpenAI Realtime, Twilio), or
    a lever that holds it back (`earshot.levers.session_levers.HoldingBuffer`)."""

    def push(self, response_id: int, audio: Pcm16, now_ms: float) -> bool:
        """Queue int16 16 kHz audio of a response; False if it was dropped (cleared id)."""
        ...

    def end(self, response_id: int) -> None:
        """No more audio will come for the response."""
        ...

    def buffered_ms_of(self, response_id: int) -> float:
        """Audio of the response queued and not yet played (ms), for the look-ahead bound."""
        ...


@runtime_checkable
class CuttableSink(AudioSink, Protocol):
    """An `AudioSink` that can cut a response's queued audio (the jitter buffer, the holding
    buffer). A filler on a sink without it (audio already streamed to a client that owns
    playout) plays whole."""

    def played_samples(self, response_id: int) -> int:
        """Samples of the response that have left the sink toward the caller."""
        ...

    def cut(self, response_id: int, at_sample: int, fade_samples: int = 0) -> int:
        """Drop the response's queued audio from ``at_sample`` on, fading out the
        ``fade_samples`` before it; returns where its audio now ends (samples)."""
        ...


@dataclass(frozen=True, slots=True)
class _FillerLine:
    """A filler in the sentence queue (from a `FillerText` in the LLM stream)."""

    playback: FillerPlayback


@dataclass(frozen=True, slots=True)
class ResponseFailed:
    """A stage of a response failed.

    Attributes:
        response_id: the response.
        stage: ``"llm"``, ``"tts"``, ``"no_audio"`` (nothing audible in time) or
            ``"internal"`` (an unexpected error in earshot itself).
        error: one line: the exception type and message.
        recovered: the caller still heard something (the rest of the reply or the fallback).
    """

    response_id: int
    stage: Stage
    error: str
    recovered: bool


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` on one line (the message alone for earshot's own LLM errors)."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return text if name == "LlmError" and text else f"{name}: {text}" if text else name


@dataclass(slots=True)
class ResponseHandle:
    """The agent's reply to one user turn (one per utterance; a resumed reply gets its own).

    Attributes:
        response_id: the id its audio carries in the jitter buffer and the transport.
        turn: the turn record its marks go into.
        words: word timings of everything synthesized so far, in samples from the first sample
            of the response (16 kHz).
        generated_text: all text the LLM produced (or the fallback line).
        llm_deltas: non-empty text deltas the LLM streamed (one per token from llama.cpp's
            server and OpenAI's streaming API; a filler line counts as none).
        synthesized_samples: samples of audio handed to the jitter buffer.
        task: the task running it (owned by the `earshot.session.scheduler.Scheduler`).
        heard_prefix: for a reply resumed after a false interruption, what was heard before.
        played_samples: the latest played position the transport reported (16 kHz samples).
        interrupted: `interrupt` was called.
        filler: the reply's latest filler line and how it ended (cut by the answer or whole).
    """

    response_id: int
    turn: TurnRecord
    words: list[WordTiming] = field(default_factory=list)
    generated_text: str = ""
    llm_deltas: int = 0
    synthesized_samples: int = 0
    task: asyncio.Task[None] | None = None
    heard_prefix: str = ""
    played_samples: int = 0
    interrupted: bool = False
    filler: FillerPlayback | None = None
    on_interrupt: Callable[[ResponseHandle], int] | None = field(default=None, repr=False)
    """Set by the session: clears this response's audio (jitter buffer and transport) and
    returns the played position. Called by `interrupt` only."""

    def heard_text(self, played_samples: int) -> str:
        """The words whose audio was fully played, given this handle's played-sample count."""
        heard = heard_text(self.words, played_samples)
        return " ".join(t for t in (self.heard_prefix, heard) if t)

    def interrupt(self) -> int:
        """Stop this reply now: the one interruption path.

        Cancels its LLM and TTS work, clears its queued audio by response id (jitter buffer
        and transport) and records the played position the transport reported.

        Returns:
            Samples of this response played by the caller's device before the stop.
        """
        self.interrupted = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.on_interrupt is not None:
            self.played_samples = self.on_interrupt(self)
        return self.played_samples


class ResponseRunner:
    """Runs responses: streams the LLM, chunks sentences, synthesizes, feeds playout.

    Args:
        clock: the session clock.
        llm, tts: the backends.
        jitter: where the audio goes (the session's jitter buffer, or any `AudioSink`).
        on_failure: called with every `ResponseFailed` (the session logs and records it).
        max_lookahead_ms: TTS pauses while more than this much of the response's audio waits
            in the jitter buffer (TTS must not run unboundedly ahead of playout).
        no_audio_timeout_ms: a response with no audio this long after it started is failed
            and the fallback line is spoken.
        chunker: factory of the sentence chunker (one per response).
        on_text: called with each chunk of text as it is handed to TTS (after sanitizing).
        on_delta: called with each piece of LLM text as it streams (raw, before chunking),
            and with the fallback line when it replaces a failed LLM; for a client that
            shows the reply's text (a text-only Realtime response).
    """

    def __init__(
        self,
        clock: Clock,
        llm: LanguageModel,
        tts: Synthesizer,
        jitter: AudioSink,
        *,
        on_failure: Callable[[ResponseFailed], None] | None = None,
        max_lookahead_ms: float = 10_000.0,
        no_audio_timeout_ms: float = 8_000.0,
        chunker: Callable[[], SentenceChunker] = SentenceChunker,
        on_text: Callable[[ResponseHandle, str], None] | None = None,
        on_delta: Callable[[ResponseHandle, str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.llm = llm
        self.tts = tts
        self.jitter = jitter
        self.on_failure = on_failure
        self.max_lookahead_ms = max_lookahead_ms
        self.no_audio_timeout_ms = no_audio_timeout_ms
        self.chunker = chunker
        self.on_text = on_text
        self.on_delta = on_delta

    def _mark(self, handle: ResponseHandle, name: str) -> None:
        handle.turn.marks_ms.setdefault(name, self.clock.now_ms())

    def _fail(self, handle: ResponseHandle, stage: Stage, error: str, recovered: bool) -> None:
        event = ResponseFailed(handle.response_id, stage, error, recovered)
        log.warning(
            "turn %d response %d: %s failed: %s", handle.turn.turn, handle.response_id, stage, error
        )
        key = {"llm": "llm_error", "tts": "tts_error"}.get(stage, "response_error")
        handle.turn.extra.setdefault(key, error)
        if self.on_failure is not None:
            self.on_failure(event)

    async def run(
        self,
        handle: ResponseHandle,
        messages: Sequence[ChatMessage] | None,
        text: str = "",
        *,
        speak: bool = True,
    ) -> None:
        """Generate (or, with ``messages=None``, just speak ``text``) and synthesize the reply.

        Returns when all its audio is in the jitter buffer. Cancelling the task cancels the
        LLM stream and the synthesis together. Never raises anything but
        `asyncio.CancelledError`: failures become `ResponseFailed` events.

        With ``speak=False`` the reply is text only (``on_delta`` gets it): no TTS, no
        fallback speech and no ``no_audio_timeout_ms``; an LLM that fails before any text is
        still replaced by the fallback line.
        """
        if not speak:
            try:
                await self._text_only(handle, messages, text)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(handle, "internal", describe_error(exc), recovered=False)
            finally:
                self.jitter.end(handle.response_id)
            return
        try:
            try:
                async with asyncio.timeout(self.no_audio_timeout_ms / 1000.0) as deadline:
                    await self._pipeline(handle, messages, text, deadline)
            except TimeoutError:
                if handle.synthesized_samples == 0:
                    self._fail(
                        handle,
                        "no_audio",
                        f"no audio {self.no_audio_timeout_ms / 1000:g} s after the reply started",
                        recovered=True,
                    )
                    await self._speak_fallback(handle)
            if handle.synthesized_samples == 0 and "tts_error" in handle.turn.extra:
                await self._speak_fallback(handle)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in earshot: still never a mute turn
            self._fail(handle, "internal", describe_error(exc), recovered=False)
            if handle.synthesized_samples == 0:
                await self._speak_fallback(handle)
        finally:
            self.jitter.end(handle.response_id)

    async def _pipeline(
        self,
        handle: ResponseHandle,
        messages: Sequence[ChatMessage] | None,
        text: str,
        deadline: asyncio.Timeout,
    ) -> None:
        sentences: asyncio.Queue[str | _FillerLine | None] = asyncio.Queue()
        async with asyncio.TaskGroup() as tg:
            if messages is None:
                chunker = self.chunker()
                for sentence in [*chunker.push(text), *chunker.flush()]:
                    sentences.put_nowait(sentence)
                sentences.put_nowait(None)
            else:
                tg.create_task(self._generate(handle, messages, sentences))
            tg.create_task(self._synthesize(handle, sentences, deadline))

    async def _text_only(
        self, handle: ResponseHandle, messages: Sequence[ChatMessage] | None, text: str
    ) -> None:
        sentences: asyncio.Queue[str | _FillerLine | None] = asyncio.Queue()
        if messages is None:
            handle.generated_text = text
            if self.on_delta is not None and text:
                self.on_delta(handle, text)
            return
        await self._generate(handle, messages, sentences)

    async def _generate(
        self,
        handle: ResponseHandle,
        messages: Sequence[ChatMessage],
        sentences: asyncio.Queue[str | _FillerLine | None],
    ) -> None:
        chunker = self.chunker()
        deltas: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

        def emit(chunks: list[str]) -> None:
            for sentence in chunks:
                self._mark(handle, "first_sentence")
                sentences.put_nowait(sentence)

        self._mark(handle, "llm_request")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pump_llm(messages, deltas))
            poll_s = (chunker.max_wait_ms or 1000.0) / 4000.0
            while True:
                try:
                    item = await asyncio.wait_for(deltas.get(), poll_s)
                except TimeoutError:
                    emit(chunker.poll(self.clock.now_ms()))
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    recovered = bool(handle.generated_text)
                    if not recovered:
                        self._mark(handle, "llm_first_token")
                        handle.generated_text = FALLBACK_LINE
                        if self.on_delta is not None:
                            self.on_delta(handle, FALLBACK_LINE)
                        chunker = self.chunker()
                        emit(chunker.push(FALLBACK_LINE))
                    handle.turn.extra["fallback"] = not recovered
                    self._fail(handle, "llm", describe_error(item), recovered=True)
                    break
                if not item:
                    continue
                self._mark(handle, "llm_first_token")
                if isinstance(item, FillerText) and item.strip():
                    # A filler is a sentence of its own: what came before it is spoken first.
                    emit(chunker.flush())
                    line = _FillerLine(self._filler_playback(handle, item))
                    self._mark(handle, "first_sentence")
                    sentences.put_nowait(line)
                else:
                    emit(chunker.push(item, self.clock.now_ms()))
                    handle.llm_deltas += 1
                handle.generated_text += item
                if self.on_delta is not None:
                    self.on_delta(handle, item)
        emit(chunker.flush())
        sentences.put_nowait(None)

    async def _pump_llm(
        self, messages: Sequence[ChatMessage], out: asyncio.Queue[str | BaseException | None]
    ) -> None:
        """LLM stream → queue; an exception is put in the queue, not raised."""
        try:
            async with contextlib.aclosing(self.llm.stream(messages)) as stream:
                async for delta in stream:
                    out.put_nowait(delta)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            out.put_nowait(exc)
            return
        out.put_nowait(None)

    async def _synthesize(
        self,
        handle: ResponseHandle,
        sentences: asyncio.Queue[str | _FillerLine | None],
        deadline: asyncio.Timeout | None,
    ) -> None:
        while (sentence := await sentences.get()) is not None:
            await self._wait_for_room(handle)
            try:
                if isinstance(sentence, _FillerLine):
                    await self._speak_filler(handle, sentence.playback)
                else:
                    await self._speak(handle, sentence)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(handle, "tts", describe_error(exc), recovered=True)
                continue
            if handle.synthesized_samples and deadline is not None:
                deadline.reschedule(None)
                deadline = None
        self._filler_whole(handle)

    async def _speak(self, handle: ResponseHandle, sentence: str, *, filler: bool = False) -> None:
        clean = sanitize_for_tts(sentence)
        if not clean:
            return
        if self.on_text is not None:
            self.on_text(handle, clean)
        offset: int | None = None
        async for chunk in stream_tts(self.tts, clean):
            if chunk.audio.size == 0 and not chunk.words:
                continue
            if offset is None:
                if not filler:
                    self._stop_filler(handle)  # the answer is ready: the filler stops
                offset = handle.synthesized_samples
            self._mark(handle, "tts_first_audio")
            handle.words.extend(offset_words(chunk.words, offset))
            if self.jitter.push(handle.response_id, chunk.audio, self.clock.now_ms()):
                self._mark(handle, "playout_queued")
            handle.synthesized_samples += len(chunk.audio)

    # -- fillers (earshot.levers.filler) ---------------------------------------------------

    def _filler_playback(self, handle: ResponseHandle, line: FillerText) -> FillerPlayback:
        lead = len(line) - len(line.lstrip())
        playback = FillerPlayback(
            line.strip(),
            line.source,
            self.clock.now_ms(),
            len(handle.generated_text) + lead,
            fade_ms=line.fade_ms,
        )
        # A filler masks a wait a cached replay would not have: never store this reply.
        handle.turn.extra["uncacheable"] = True
        return playback

    async def _speak_filler(self, handle: ResponseHandle, playback: FillerPlayback) -> None:
        """Speak a filler line as a sentence of its own, remembering where its audio sits."""
        self._filler_whole(handle)  # an earlier filler is not cut by a later one
        handle.filler = playback
        playback.start_sample = handle.synthesized_samples
        first_word = len(handle.words)
        try:
            await self._speak(handle, playback.text, filler=True)
        finally:
            playback.num_samples = handle.synthesized_samples - playback.start_sample
            start = playback.start_sample
            playback.words = tuple(
                WordTiming(w.text, w.start_sample - start, w.end_sample - start)
                for w in handle.words[first_word:]
            )
            handle.turn.extra["filler"] = playback.to_json()

    def _filler_whole(self, handle: ResponseHandle) -> None:
        """The reply's filler was not cut (it had played out, or nothing followed it)."""
        playback = handle.filler
        if playback is not None and playback.outcome is None:
            playback.outcome = "whole"
            handle.turn.extra["filler"] = playback.to_json()

    def _stop_filler(self, handle: ResponseHandle) -> None:
        """`_cut_filler`, guarded: a bug in the cut must not cost the answer its sentence (the
        filler then plays whole and the error is recorded)."""
        try:
            self._cut_filler(handle)
        except Exception as exc:
            self._fail(handle, "internal", f"filler cut: {describe_error(exc)}", recovered=True)
            self._filler_whole(handle)

    def _cut_filler(self, handle: ResponseHandle) -> None:
        """The answer's first audio is ready: stop the filler at the next word boundary.

        The cut is on the response's queued audio (`CuttableSink.cut`); the words after it
        leave the reply's word timings and text, so heard text and history hold only what
        the caller heard. Audio that has left the buffer is never recalled: the cut is at or
        after it.
        """
        playback = handle.filler
        if playback is None or playback.outcome is not None:
            return
        sink = self.jitter
        if not isinstance(sink, CuttableSink):
            self._filler_whole(handle)
            return
        rid = handle.response_id
        sent = max(0, sink.played_samples(rid) - playback.start_sample)
        cut = plan_cut(playback.words, playback.num_samples, sent, ms_to_samples(playback.fade_ms))
        if cut.whole:
            self._filler_whole(handle)
            return
        end = sink.cut(rid, playback.start_sample + cut.cut_sample, cut.fade_samples)
        handle.synthesized_samples = end
        handle.words = [w for w in handle.words if w.end_sample <= end]
        text = handle.generated_text
        at = text.find(playback.text, playback.text_start)
        if at < 0:
            at = text.rfind(playback.text, 0, playback.text_start + len(playback.text))
        if at >= 0:
            kept = " ".join(w.text for w in cut.heard)
            rest = text[at + len(playback.text) :]
            handle.generated_text = text[:at] + (kept + rest if kept else rest.lstrip())
        playback.cut = cut
        playback.cut_at_ms = self.clock.now_ms()
        playback.outcome = "cut"
        handle.turn.extra["filler"] = playback.to_json()

    async def _speak_fallback(self, handle: ResponseHandle) -> None:
        """Speak the fallback line (once); if even that fails, record it and give up."""
        if handle.turn.extra.get("fallback_spoken"):
            return
        handle.turn.extra["fallback_spoken"] = True
        handle.turn.extra["fallback"] = True
        if not handle.generated_text.strip():
            handle.generated_text = FALLBACK_LINE
        for name in ("llm_first_token", "first_sentence"):
            self._mark(handle, name)
        try:
            await self._speak(handle, FALLBACK_LINE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(handle, "tts", describe_error(exc), recovered=False)

    async def _wait_for_room(self, handle: ResponseHandle) -> None:
        """Bound the TTS look-ahead: wait while too much of this reply is queued unplayed."""
        limit = self.max_lookahead_ms
        while self.jitter.buffered_ms_of(handle.response_id) > limit:
            await self.clock.sleep_ms(20.0)
