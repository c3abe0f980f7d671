"""The conversation loop: frames in, turns detected, replies streamed, frames out.

Three tasks share one session clock:

* the **pacer** ticks once per frame: it hands the input frame that just finished arriving to
  the input worker and pulls the next output frame from the jitter buffer (the playout);
* the **input worker** runs VAD (off the loop), the VAD segmenter and the turn detector, and
  feeds the STT worker; on end-of-turn it starts a response;
* the **STT worker** feeds the streaming recognizer (off the loop) while the user speaks and
  finalizes it at end-of-turn.

Responses (LLM → chunker → TTS → jitter buffer) run as their own tasks. Nothing waits for a
whole utterance or a whole reply.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples, samples_per_frame
from earshot.clock import Clock, run_blocking
from earshot.llm.base import ChatMessage, LanguageModel
from earshot.metrics.turn import TurnRecord
from earshot.playout.jitter import JitterBuffer, PlayoutFrame
from earshot.session.config import SessionConfig
from earshot.session.response import ResponseHandle, ResponseRunner
from earshot.stt.base import StreamingRecognizer, Transcript
from earshot.tts.base import Synthesizer
from earshot.turns.detector import EndOfTurn, TurnDetector, TurnDiscarded, TurnStarted
from earshot.turns.endpointer import Endpointer
from earshot.vad.base import VoiceActivityDetector
from earshot.vad.segmenter import SpeechEnded, VadSegmenter


@dataclass(frozen=True, slots=True)
class _SttStart:
    pass


@dataclass(frozen=True, slots=True)
class _SttAudio:
    pcm: Pcm16


@dataclass(frozen=True, slots=True)
class _SttFinish:
    result: asyncio.Future[Transcript] | None  # None: discard the utterance


_SttItem = _SttStart | _SttAudio | _SttFinish


@dataclass(slots=True)
class SessionState:
    """What the session has produced so far; readable after an interruption (Ctrl-C).

    Attributes:
        turns: completed and in-flight turn records, in order.
        agent_frames: the agent output track, one int16 frame per tick from session time 0.
        input_frames_done: input frames processed by the pacer.
    """

    turns: list[TurnRecord] = field(default_factory=list)
    agent_frames: list[Pcm16] = field(default_factory=list)
    input_frames_done: int = 0
    history: list[ChatMessage] = field(default_factory=list)

    def agent_track(self) -> Pcm16:
        """The agent's output so far: int16 16 kHz mono from session time 0."""
        if not self.agent_frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.agent_frames)


class Session:
    """One conversation with a recorded or live caller.

    Args:
        config: frame size, thresholds, jitter buffer.
        clock: the session clock (``SystemClock`` for real time, ``SimulatedClock`` for fast
            deterministic runs); ``now_ms()`` must read 0 at the start of `run`.
        vad, stt, llm, tts: the stage backends.
        endpointer: the end-of-turn policy.
        on_turn: called with each turn record once its reply has finished playing.
    """

    def __init__(
        self,
        config: SessionConfig,
        clock: Clock,
        vad: VoiceActivityDetector,
        stt: StreamingRecognizer,
        llm: LanguageModel,
        tts: Synthesizer,
        endpointer: Endpointer,
        on_turn: Callable[[TurnRecord], None] | None = None,
        on_tick: Callable[[float, SessionState], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.vad = vad
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.on_turn = on_turn
        self.on_tick = on_tick
        self.frame_samples = samples_per_frame(config.frame_ms)
        self.segmenter = VadSegmenter(threshold=config.vad_threshold)
        self.detector = TurnDetector(endpointer, config.min_speech_ms)
        self.jitter = JitterBuffer(config.jitter_ms, SAMPLE_RATE_HZ)
        self.runner = ResponseRunner(clock, llm, tts, self.jitter)
        self.state = SessionState()
        self._input_q: asyncio.Queue[tuple[int, Pcm16] | None] = asyncio.Queue()
        self._stt_q: asyncio.Queue[_SttItem | None] = asyncio.Queue()
        self._partial = ""
        self._pre_roll: deque[Pcm16] = deque(
            maxlen=max(1, int(config.pre_roll_ms // config.frame_ms))
        )
        self._responses: dict[int, ResponseHandle] = {}
        self._next_response_id = 1
        self._frames_delivered = 0
        self._frames_processed = 0

    # -- the pacer -------------------------------------------------------------------------

    async def run(self, user_audio: Pcm16) -> SessionState:
        """Converse with ``user_audio`` (int16, 16 kHz mono) paced on the session clock.

        Returns when the input has ended, no turn is open and every reply has played (or
        ``max_tail_ms`` after the input ended).
        """
        if user_audio.dtype != np.int16 or user_audio.ndim != 1:
            raise ValueError(
                f"user audio must be 1-D int16 at 16 kHz, got {user_audio.dtype} {user_audio.shape}"
            )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._input_worker())
            tg.create_task(self._stt_worker())
            await self._pace(user_audio)
            await self._input_q.put(None)
            await self._stt_q.put(None)
            for handle in list(self._responses.values()):
                if handle.task is not None:
                    handle.task.cancel()
        return self.state

    async def _pace(self, user_audio: Pcm16) -> None:
        n = self.frame_samples
        frame_ms = self.config.frame_ms
        num_input_frames = -(-len(user_audio) // n)
        max_frames = num_input_frames + int(self.config.max_tail_ms // frame_ms)
        k = 0
        while k <= max_frames:
            tick_ms = k * frame_ms
            await self.clock.sleep_until_ms(tick_ms)
            if k > 0:
                i = k - 1
                frame = user_audio[i * n : (i + 1) * n]
                if len(frame) < n:
                    frame = np.concatenate([frame, np.zeros(n - len(frame), dtype=np.int16)])
                self._input_q.put_nowait((i, frame))
                self._frames_delivered += 1
                self.state.input_frames_done = k
            self._play(self.jitter.pull(n, tick_ms), tick_ms)
            if self.on_tick is not None:
                self.on_tick(tick_ms, self.state)
            if k >= num_input_frames and self._idle():
                break
            k += 1

    def _idle(self) -> bool:
        return (
            self._frames_processed == self._frames_delivered
            and not self.detector.in_turn
            and not self._responses
            and self._stt_q.empty()
        )

    def _play(self, frame: PlayoutFrame, tick_ms: float) -> None:
        self.state.agent_frames.append(frame.audio)
        if frame.started and frame.response_id is not None:
            handle = self._responses.get(frame.response_id)
            if handle is not None:
                handle.turn.marks_ms.setdefault("playout_start", tick_ms)
        for rid in frame.finished_ids:
            self._finish_response(rid)

    def _finish_response(self, response_id: int) -> None:
        handle = self._responses.pop(response_id, None)
        if handle is None:
            return
        played = self.jitter.played_samples(response_id)
        turn = handle.turn
        turn.agent_text = handle.generated_text.strip()
        turn.heard_text = handle.heard_text(played)
        turn.extra["played_samples"] = played
        self.state.history.append(ChatMessage("assistant", turn.agent_text))
        if self.on_turn is not None:
            self.on_turn(turn)

    # -- input: VAD, turns ------------------------------------------------------------------

    async def _input_worker(self) -> None:
        frame_ms = self.config.frame_ms
        while (item := await self._input_q.get()) is not None:
            index, frame = item
            start_ms = index * frame_ms
            prob = await run_blocking(self.vad.speech_probability, frame)
            voiced_end_ms: float | None = None
            for ev in self.segmenter.push(prob, start_ms, frame_ms):
                if isinstance(ev, SpeechEnded):
                    voiced_end_ms = ev.end_ms
            self._pre_roll.append(frame)
            was_in_turn = self.detector.in_turn
            events = self.detector.push(
                start_ms,
                start_ms + frame_ms,
                self.segmenter.is_speech,
                self._partial,
                frame,
                voiced_end_ms,
            )
            if was_in_turn and self.detector.in_turn:
                self._stt_q.put_nowait(_SttAudio(frame))
            for ev in events:
                match ev:
                    case TurnStarted():
                        self._partial = ""
                        self._stt_q.put_nowait(_SttStart())
                        for f in self._pre_roll:
                            self._stt_q.put_nowait(_SttAudio(f))
                    case EndOfTurn():
                        self._end_of_turn(ev)
                    case TurnDiscarded():
                        self._stt_q.put_nowait(_SttFinish(None))
                    case _:
                        pass
            self._frames_processed += 1

    def _end_of_turn(self, ev: EndOfTurn) -> None:
        turn = TurnRecord(turn=len(self.state.turns) + 1)
        turn.marks_ms["speech_end"] = ev.speech_end_ms
        turn.marks_ms["end_of_turn"] = self.clock.now_ms()
        turn.extra["speech_ms"] = ev.speech_ms
        self.state.turns.append(turn)
        final: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        self._stt_q.put_nowait(_SttFinish(final))
        handle = ResponseHandle(self._next_response_id, turn)
        self._next_response_id += 1
        self._responses[handle.response_id] = handle
        self.jitter.open(handle.response_id)
        handle.task = asyncio.create_task(self._respond(handle, final))

    async def _respond(self, handle: ResponseHandle, final: asyncio.Future[Transcript]) -> None:
        transcript = await final
        turn = handle.turn
        turn.marks_ms["stt_final"] = self.clock.now_ms()
        turn.user_text = transcript.text
        self.state.history.append(ChatMessage("user", transcript.text))
        try:
            await self.runner.run(handle, list(self.state.history))
        finally:
            if handle.synthesized_samples == 0:
                # Nothing to play: the response is over now.
                self.jitter.clear(handle.response_id)
                self._finish_response(handle.response_id)

    # -- STT --------------------------------------------------------------------------------

    async def _stt_worker(self) -> None:
        active = False
        backlog: deque[_SttItem | None] = deque()
        while True:
            if not backlog:
                backlog.append(await self._stt_q.get())
            while not self._stt_q.empty():  # catch up: take everything queued, in order
                backlog.append(self._stt_q.get_nowait())
            item = backlog.popleft()
            match item:
                case None:
                    return
                case _SttStart():
                    await run_blocking(self.stt.start)
                    active = True
                case _SttAudio():
                    # Coalesce consecutive frames that queued up while STT was busy.
                    chunks = [item.pcm]
                    while backlog and isinstance(backlog[0], _SttAudio):
                        chunks.append(backlog.popleft().pcm)  # type: ignore[union-attr]
                    if active:
                        pcm = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
                        self._partial = await run_blocking(self.stt.push_audio, pcm)
                case _SttFinish():
                    transcript = await run_blocking(self.stt.finish) if active else Transcript("")
                    active = False
                    self._partial = ""
                    if item.result is not None and not item.result.done():
                        item.result.set_result(transcript)


def pre_roll_samples(config: SessionConfig) -> int:
    """Samples of audio before detected speech onset that STT also receives."""
    return ms_to_samples(config.pre_roll_ms)
