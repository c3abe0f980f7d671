"""One agent utterance: LLM → sentence chunker → TTS → jitter buffer, and its handle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from earshot.clock import Clock
from earshot.llm import FALLBACK_LINE
from earshot.llm.base import ChatMessage, LanguageModel, LlmError
from earshot.metrics.turn import TurnRecord
from earshot.playout.jitter import JitterBuffer
from earshot.session.tts_stream import stream_tts
from earshot.text.chunker import SentenceChunker
from earshot.tts.base import Synthesizer, WordTiming
from earshot.tts.heard import heard_text, offset_words


@dataclass(slots=True)
class ResponseHandle:
    """The agent's reply to one user turn.

    Attributes:
        response_id: the id its audio carries in the jitter buffer.
        turn: the turn record its marks go into.
        words: word timings of everything synthesized so far, in samples from the first sample
            of the response (16 kHz).
        generated_text: all text the LLM produced.
        synthesized_samples: samples of audio handed to the jitter buffer.
    """

    response_id: int
    turn: TurnRecord
    words: list[WordTiming] = field(default_factory=list)
    generated_text: str = ""
    synthesized_samples: int = 0
    task: asyncio.Task[None] | None = None
    heard_prefix: str = ""
    """For a reply resumed after a false interruption: what was heard before the stop."""

    def heard_text(self, played_samples: int) -> str:
        """The words whose audio was fully played, given this handle's played-sample count."""
        heard = heard_text(self.words, played_samples)
        return " ".join(t for t in (self.heard_prefix, heard) if t)


class ResponseRunner:
    """Runs responses: streams the LLM, chunks sentences, synthesizes, feeds playout."""

    def __init__(
        self,
        clock: Clock,
        llm: LanguageModel,
        tts: Synthesizer,
        jitter: JitterBuffer,
    ) -> None:
        self.clock = clock
        self.llm = llm
        self.tts = tts
        self.jitter = jitter

    def _mark(self, handle: ResponseHandle, name: str) -> None:
        handle.turn.marks_ms.setdefault(name, self.clock.now_ms())

    async def run(
        self, handle: ResponseHandle, messages: Sequence[ChatMessage] | None, text: str = ""
    ) -> None:
        """Generate (or, with ``messages=None``, just speak ``text``) and synthesize the reply.

        Returns when all its audio is in the jitter buffer. Cancelling the task cancels the
        LLM stream and the synthesis together.
        """
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        try:
            async with asyncio.TaskGroup() as tg:
                if messages is None:
                    self._feed_text(handle, text, sentences)
                else:
                    tg.create_task(self._generate(handle, messages, sentences))
                tg.create_task(self._synthesize(handle, sentences))
        finally:
            self.jitter.end(handle.response_id)

    def _feed_text(
        self, handle: ResponseHandle, text: str, sentences: asyncio.Queue[str | None]
    ) -> None:
        chunker = SentenceChunker()
        for sentence in [*chunker.push(text), *chunker.flush()]:
            sentences.put_nowait(sentence)
        sentences.put_nowait(None)

    async def _generate(
        self,
        handle: ResponseHandle,
        messages: Sequence[ChatMessage],
        sentences: asyncio.Queue[str | None],
    ) -> None:
        chunker = SentenceChunker()
        self._mark(handle, "llm_request")
        try:
            async with contextlib.aclosing(self.llm.stream(messages)) as stream:
                async for delta in stream:
                    if not delta:
                        continue
                    self._mark(handle, "llm_first_token")
                    handle.generated_text += delta
                    for sentence in chunker.push(delta):
                        self._mark(handle, "first_sentence")
                        sentences.put_nowait(sentence)
        except LlmError as exc:
            handle.turn.extra["llm_error"] = str(exc)
            if not handle.generated_text:
                self._mark(handle, "llm_first_token")
                handle.generated_text = FALLBACK_LINE
                chunker = SentenceChunker()
                for sentence in chunker.push(FALLBACK_LINE):
                    self._mark(handle, "first_sentence")
                    sentences.put_nowait(sentence)
        for sentence in chunker.flush():
            self._mark(handle, "first_sentence")
            sentences.put_nowait(sentence)
        sentences.put_nowait(None)

    async def _synthesize(
        self, handle: ResponseHandle, sentences: asyncio.Queue[str | None]
    ) -> None:
        while (sentence := await sentences.get()) is not None:
            offset = handle.synthesized_samples
            async for chunk in stream_tts(self.tts, sentence):
                if chunk.audio.size == 0 and not chunk.words:
                    continue
                self._mark(handle, "tts_first_audio")
                handle.words.extend(offset_words(chunk.words, offset))
                if self.jitter.push(handle.response_id, chunk.audio, self.clock.now_ms()):
                    self._mark(handle, "playout_queued")
                handle.synthesized_samples += len(chunk.audio)
