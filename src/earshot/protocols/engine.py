"""The audio/model engine behind a protocol endpoint (OpenAI Realtime, Twilio Media Streams).

It takes `earshot.protocols.engine_types` commands and answers with engine events:

* **input**: audio of any chunk size is cut into frames; with turn detection on, each frame
  goes through the VAD (off the loop), the `VadSegmenter` and the `TurnDetector` with the
  configured end-pointer (fixed silence or earshot's smart end-pointer); the turn's audio,
  with ``prefix_padding_ms`` of audio before the speech start, streams into the recognizer
  while the user talks. With turn detection off, every appended frame streams into the
  recognizer until the client commits. Times are input-audio ms from sample counts; the
  session-clock ``speech_end`` is the arrival of the chunk that carried the last voiced sample.
* **responses**: one task per response in the engine's TaskGroup: LLM → sentence chunker →
  TTS, streamed; cancelling the task stops the LLM stream and the synthesis together. A
  failure becomes a `ResponseFinished` with the error (an LLM failure speaks the fallback
  line); it never ends the connection.

This is the endpoint-side counterpart of the session loop: the client owns playout (a Realtime
client plays the deltas itself; Twilio plays the media it is sent), so there is no server-side
jitter buffer here, and the conversation lives in the protocol state machine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, samples_per_frame, samples_to_ms
from earshot.clock import Clock, run_blocking
from earshot.llm import FALLBACK_LINE
from earshot.llm.base import LanguageModel, LlmError
from earshot.protocols.engine_types import (
    AppendAudio,
    CancelResponse,
    ClearInput,
    CommitInput,
    Configure,
    EngineCommand,
    EngineEvent,
    ResponseAudio,
    ResponseFinished,
    ResponseText,
    SpeechDiscarded,
    SpeechStarted,
    SpeechStopped,
    StartResponse,
    Transcribed,
    TurnSettings,
)
from earshot.session.tts_stream import stream_tts
from earshot.stt.base import StreamingRecognizer
from earshot.text.chunker import SentenceChunker
from earshot.tts.base import Synthesizer
from earshot.tts.heard import offset_words
from earshot.turns.detector import EndOfTurn, TurnDetector, TurnDiscarded, TurnStarted
from earshot.turns.endpointer import Endpointer, FixedEndpointer
from earshot.vad.base import VoiceActivityDetector
from earshot.vad.segmenter import SpeechEnded, VadSegmenter


@dataclass(slots=True)
class EngineComponents:
    """One connection's stage backends (the recognizer keeps per-utterance state: one each)."""

    vad: VoiceActivityDetector
    stt: StreamingRecognizer
    llm: LanguageModel
    tts: Synthesizer


def smart_endpointer(scale: float) -> Endpointer:
    """earshot's smart end-pointer with every silence bound multiplied by ``scale``."""
    from earshot.turns.endpointing_rules import load_rules
    from earshot.turns.smart import SmartEndpointer

    rules = load_rules(None)
    b = rules.bounds_ms
    bounds = b.model_copy(update={k: getattr(b, k) * scale for k in type(b).model_fields})
    return SmartEndpointer(rules.model_copy(update={"bounds_ms": bounds}))


_InputItem = AppendAudio | CommitInput | ClearInput | Configure


class ProtocolEngine:
    """Runs the models for one connection.

    Args:
        components: the stage backends.
        clock: the connection's session clock.
        emit: called (on the event loop, synchronously) with every engine event.
        frame_ms: frame size of the listener (10, 20 or 40 ms).
    """

    def __init__(
        self,
        components: EngineComponents,
        clock: Clock,
        emit: Callable[[EngineEvent], None],
        frame_ms: int = 20,
    ) -> None:
        self.c = components
        self.clock = clock
        self.emit = emit
        self.frame_ms = frame_ms
        self.frame_samples = samples_per_frame(frame_ms)
        self._input: asyncio.Queue[_InputItem] = asyncio.Queue()
        self._tg: asyncio.TaskGroup | None = None
        self._pending_starts: list[StartResponse] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._turn: TurnSettings | None = None
        self._segmenter = VadSegmenter()
        self._detector = TurnDetector(FixedEndpointer())
        self._pre_roll: deque[tuple[float, Pcm16]] = deque(maxlen=25)
        self._prefix_ms = 300.0
        self._carry = np.zeros(0, dtype=np.int16)
        self._frames_done = 0
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=4096)
        self._audio_in_ms = 0.0
        self._segment_open = False
        self._segment_samples = 0
        self._stt_backlog: list[Pcm16] = []
        self._partial = ""

    # -- commands --------------------------------------------------------------------------

    def submit(self, cmd: EngineCommand) -> None:
        """Take a command (non-blocking; input commands are handled in order)."""
        match cmd:
            case StartResponse():
                if self._tg is None:
                    self._pending_starts.append(cmd)
                else:
                    self._start(cmd)
            case CancelResponse():
                task = self._tasks.pop(cmd.response_id, None)
                if task is not None:
                    task.cancel()
            case AppendAudio():
                self._audio_in_ms += samples_to_ms(len(cmd.pcm))
                end_ms = self._audio_in_ms if cmd.audio_end_ms is None else cmd.audio_end_ms
                self._arrivals.append((end_ms, cmd.arrival_ms))
                self._input.put_nowait(cmd)
            case _:
                self._input.put_nowait(cmd)

    async def run(self) -> None:
        """Serve commands until cancelled (the connection closed)."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for cmd in self._pending_starts:
                self._start(cmd)
            self._pending_starts.clear()
            tg.create_task(self._input_worker())

    # -- input -----------------------------------------------------------------------------

    async def _input_worker(self) -> None:
        while True:
            item = await self._input.get()
            match item:
                case AppendAudio():
                    await self._append(item.pcm)
                case CommitInput():
                    await self._commit(item.item_id)
                case ClearInput():
                    await self._close_segment()
                    self._carry = np.zeros(0, dtype=np.int16)
                case Configure():
                    self._configure(item.turn)
            if self._input.empty():
                await self._flush_stt()

    def _configure(self, turn: TurnSettings | None) -> None:
        self._turn = turn
        if turn is None:
            return
        endpointer = (
            FixedEndpointer(turn.silence_ms)
            if turn.endpointer == "fixed"
            else smart_endpointer(turn.scale)
        )
        self._segmenter = VadSegmenter(threshold=turn.threshold)
        self._detector = TurnDetector(endpointer)
        # Keep the prefix padding before a speech start plus the frames the VAD needs to
        # confirm that start (its run of voiced frames is dated from the run's first frame).
        self._prefix_ms = turn.prefix_padding_ms
        frames = round(turn.prefix_padding_ms / self.frame_ms) + 10
        self._pre_roll = deque(self._pre_roll, maxlen=frames)

    async def _append(self, pcm: Pcm16) -> None:
        audio = np.concatenate([self._carry, pcm]) if self._carry.size else pcm
        n = self.frame_samples
        whole = len(audio) // n * n
        self._carry = audio[whole:].copy()
        for start in range(0, whole, n):
            await self._frame(audio[start : start + n])

    async def _frame(self, frame: Pcm16) -> None:
        start_ms = self._frames_done * self.frame_ms
        end_ms = start_ms + self.frame_ms
        self._frames_done += 1
        if self._turn is None:
            if not self._segment_open:
                await self._open_segment([])
            self._feed(frame)
            return
        prob = await run_blocking(self.c.vad.speech_probability, frame)
        voiced_end_ms: float | None = None
        for vad_event in self._segmenter.push(prob, start_ms, self.frame_ms):
            if isinstance(vad_event, SpeechEnded):
                voiced_end_ms = vad_event.end_ms
        was_in_turn = self._detector.in_turn
        events = self._detector.push(
            start_ms, end_ms, self._segmenter.is_speech, self._partial, frame, voiced_end_ms
        )
        if was_in_turn and self._detector.in_turn and self._segment_open:
            self._feed(frame)
        for event in events:
            match event:
                case TurnStarted():
                    # The VAD dates speech from the first frame of its voiced run.
                    speech_ms = self._segmenter.speech_start_ms
                    speech_ms = event.start_ms if speech_ms is None else speech_ms
                    first_ms = speech_ms - self._prefix_ms - 1e-6
                    padding = [(t, f) for t, f in self._pre_roll if t >= first_ms]
                    await self._open_segment([*(f for _, f in padding), frame])
                    audio_start_ms = padding[0][0] if padding else start_ms
                    self.emit(SpeechStarted(audio_start_ms, speech_ms))
                case EndOfTurn():
                    self.emit(
                        SpeechStopped(
                            audio_end_ms=event.decided_at_ms,
                            speech_end_audio_ms=event.speech_end_ms,
                            speech_end_ms=self._arrival_of(event.speech_end_ms),
                            end_of_turn_ms=self.clock.now_ms(),
                            endpointer_reason=str(
                                getattr(self._detector.endpointer, "last_decision_reason", "")
                            ),
                        )
                    )
                case TurnDiscarded():
                    await self._close_segment()
                    self.emit(SpeechDiscarded(event.end_ms))
                case _:
                    pass
        self._pre_roll.append((start_ms, frame))

    def _arrival_of(self, audio_ms: float) -> float:
        for end_ms, arrival_ms in self._arrivals:
            if end_ms >= audio_ms - 1e-6:
                return arrival_ms
        return self.clock.now_ms()

    async def _open_segment(self, frames: list[Pcm16]) -> None:
        if self._segment_open:
            await self._close_segment()
        await run_blocking(self.c.stt.start)
        self._segment_open = True
        self._segment_samples = 0
        self._partial = ""
        for f in frames:
            self._feed(f)

    def _feed(self, pcm: Pcm16) -> None:
        self._stt_backlog.append(pcm)
        self._segment_samples += len(pcm)

    async def _flush_stt(self) -> None:
        if not self._segment_open or not self._stt_backlog:
            return
        audio = np.concatenate(self._stt_backlog)
        self._stt_backlog.clear()
        self._partial = await run_blocking(self.c.stt.push_audio, audio)

    async def _close_segment(self) -> None:
        if self._segment_open:
            self._stt_backlog.clear()
            await run_blocking(self.c.stt.finish)
        self._segment_open = False
        self._segment_samples = 0
        self._partial = ""

    async def _commit(self, item_id: str) -> None:
        if self._turn is None and self._carry.size:
            if not self._segment_open:
                await self._open_segment([])
            self._feed(self._carry)
            self._carry = np.zeros(0, dtype=np.int16)
        text, audio_ms = "", samples_to_ms(self._segment_samples)
        if self._segment_open:
            await self._flush_stt()
            transcript = await run_blocking(self.c.stt.finish)
            text = transcript.text
        self._segment_open = False
        self._segment_samples = 0
        self._partial = ""
        self.emit(Transcribed(item_id, text, audio_ms, self.clock.now_ms()))

    # -- responses -------------------------------------------------------------------------

    def _start(self, cmd: StartResponse) -> None:
        if self._tg is None:  # unreachable: submit queues starts until run() begins
            raise RuntimeError("engine not running")
        self._tasks[cmd.response_id] = self._tg.create_task(self._respond(cmd))

    async def _respond(self, cmd: StartResponse) -> None:
        marks: dict[str, float] = {}
        llm_error = ""
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        def mark(name: str) -> None:
            marks.setdefault(name, self.clock.now_ms())

        async def generate() -> None:
            nonlocal llm_error
            chunker = SentenceChunker()
            mark("llm_request")
            produced = False
            try:
                async with contextlib.aclosing(self.c.llm.stream(cmd.messages)) as stream:
                    async for delta in stream:
                        if not delta:
                            continue
                        mark("llm_first_token")
                        produced = True
                        if not cmd.audio:
                            self.emit(ResponseText(cmd.response_id, delta))
                        for sentence in chunker.push(delta):
                            mark("first_sentence")
                            sentences.put_nowait(sentence)
            except LlmError as exc:
                llm_error = str(exc)
                if not produced:
                    mark("llm_first_token")
                    if not cmd.audio:
                        self.emit(ResponseText(cmd.response_id, FALLBACK_LINE))
                    chunker = SentenceChunker()
                    for sentence in chunker.push(FALLBACK_LINE):
                        mark("first_sentence")
                        sentences.put_nowait(sentence)
            for sentence in chunker.flush():
                mark("first_sentence")
                sentences.put_nowait(sentence)
            sentences.put_nowait(None)

        async def synthesize() -> None:
            total = 0  # samples of the reply so far
            while (sentence := await sentences.get()) is not None:
                first = True
                offset = total  # word timings are per synthesize() call: shift by what came before
                async for chunk in stream_tts(self.c.tts, sentence):
                    if chunk.audio.size == 0 and not chunk.words:
                        continue
                    mark("tts_first_audio")
                    if first:
                        self.emit(ResponseText(cmd.response_id, sentence + " "))
                        first = False
                    words = tuple(offset_words(chunk.words, offset))
                    self.emit(ResponseAudio(cmd.response_id, chunk.audio, words, dict(marks)))
                    total += len(chunk.audio)

        try:
            async with asyncio.TaskGroup() as tg:
                if cmd.speak_text is not None:
                    chunker = SentenceChunker()
                    mark("first_sentence")
                    for sentence in [*chunker.push(cmd.speak_text), *chunker.flush()]:
                        sentences.put_nowait(sentence)
                    sentences.put_nowait(None)
                else:
                    tg.create_task(generate())
                if cmd.audio:
                    tg.create_task(synthesize())
            self.emit(ResponseFinished(cmd.response_id, marks, llm_error=llm_error))
        except Exception as exc:  # a failing backend ends this response, not the connection
            self.emit(ResponseFinished(cmd.response_id, marks, error=_describe(exc)))
        finally:
            self._tasks.pop(cmd.response_id, None)


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


__all__ = ["SAMPLE_RATE_HZ", "EngineComponents", "ProtocolEngine", "smart_endpointer"]
