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
from typing import Any

import numpy as np

from earshot.audio.frames import (
    SAMPLE_RATE_HZ,
    Pcm16,
    samples_per_frame,
    samples_to_ms,
)
from earshot.clock import Clock, run_blocking
from earshot.echo.aec import AcousticEchoCanceller
from earshot.echo.path import MicMixer
from earshot.llm.base import ChatMessage, LanguageModel
from earshot.metrics.turn import TurnRecord
from earshot.playout.jitter import JitterBuffer, PlayoutFrame
from earshot.session.config import SessionConfig
from earshot.session.response import ResponseHandle, ResponseRunner
from earshot.stt.base import StreamingRecognizer, Transcript
from earshot.tts.base import Synthesizer
from earshot.tts.heard import resume_text
from earshot.turns.bargein import (
    Backchannel,
    BargeInConfig,
    BargeInDetected,
    BargeInPolicy,
    FalseInterruption,
    InterruptionConfirmed,
    is_backchannel,
    reaction_ms,
)
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
    agent_active: list[bool] = field(default_factory=list)
    """Per output frame: an agent response was playing (audio or an underrun inside one)."""
    mic_frames: list[Pcm16] = field(default_factory=list)
    """The microphone signal (user + echo + noise) when the transport simulates a room."""
    input_frames_done: int = 0
    history: list[ChatMessage] = field(default_factory=list)
    barge_ins: list[dict[str, Any]] = field(default_factory=list)
    """Every barge-in detection with its resolution (also copied into its turn record)."""
    responses: list[ResponseHandle] = field(default_factory=list)
    """Every response started, in order (resumed replies get a handle of their own); their
    word timings and ids let evaluations check what was played."""

    def agent_track(self) -> Pcm16:
        """The agent's output so far: int16 16 kHz mono from session time 0."""
        if not self.agent_frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.agent_frames)

    def mic_track(self) -> Pcm16 | None:
        """The simulated microphone signal (int16 16 kHz), or None without a room."""
        return np.concatenate(self.mic_frames) if self.mic_frames else None


class Session:
    """One conversation with a recorded or live caller.

    Args:
        config: frame size, thresholds, jitter buffer.
        clock: the session clock (``SystemClock`` for real time, ``SimulatedClock`` for fast
            deterministic runs); ``now_ms()`` must read 0 at the start of `run`.
        vad, stt, llm, tts: the stage backends.
        endpointer: the end-of-turn policy.
        bargein: barge-in thresholds; None disables barge-in (user speech during playout is
            then an ordinary turn, answered after the current reply).
        aec: echo canceller run on the microphone signal with the agent output as far end.
        mic: the transport's room simulation (echo path + noise) applied to the user track.
        on_turn: called with each turn record once its reply has finished (or was cut off).
        on_tick: called after every pacer tick with the session time and state.
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
        *,
        bargein: BargeInConfig | None = None,
        aec: AcousticEchoCanceller | None = None,
        mic: MicMixer | None = None,
        on_turn: Callable[[TurnRecord], None] | None = None,
        on_tick: Callable[[float, SessionState], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.vad = vad
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.aec = aec
        self.mic = mic
        self.on_turn = on_turn
        self.on_tick = on_tick
        self.frame_samples = samples_per_frame(config.frame_ms)
        self.segmenter = VadSegmenter(threshold=config.vad_threshold)
        self.detector = TurnDetector(endpointer, config.min_speech_ms)
        self.bargein = BargeInPolicy(bargein) if bargein is not None else None
        self.jitter = JitterBuffer(config.jitter_ms, SAMPLE_RATE_HZ)
        self.runner = ResponseRunner(clock, llm, tts, self.jitter)
        self.state = SessionState()
        self._input_q: asyncio.Queue[tuple[int, Pcm16, Pcm16] | None] = asyncio.Queue()
        self._stt_q: asyncio.Queue[_SttItem | None] = asyncio.Queue()
        self._partial = ""
        self._pre_roll: deque[Pcm16] = deque(
            maxlen=max(1, int(config.pre_roll_ms // config.frame_ms))
        )
        self._responses: dict[int, ResponseHandle] = {}
        self._next_response_id = 1
        self._frames_delivered = 0
        self._frames_processed = 0
        self._capture_delay_ms = samples_to_ms(aec.output_delay_samples) if aec else 0.0
        self._agent_played_ms = 0.0
        self._last_agent_sample_ms: dict[int, float] = {}
        self._interrupted: tuple[ResponseHandle, int, dict[str, Any]] | None = None
        self._continued_turn: TurnRecord | None = None
        self._turn_started_during_agent = False

    # -- the pacer -------------------------------------------------------------------------

    async def run(self, user_audio: Pcm16) -> SessionState:
        """Converse with ``user_audio`` (int16, 16 kHz mono) paced on the session clock.

        Returns when the input has ended, no turn is open and every reply has played (or
        ``max_tail_ms`` after the input ended).

        Raises:
            ValueError: ``user_audio`` is not 1-D int16.
        """
        if user_audio.dtype != np.int16 or user_audio.ndim != 1:
            raise ValueError(
                f"user audio must be 1-D int16 at 16 kHz, got {user_audio.dtype} {user_audio.shape}"
            )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._input_worker())
            tg.create_task(self._stt_worker())
            try:
                await self._pace(user_audio)
            finally:
                self._input_q.put_nowait(None)
                self._stt_q.put_nowait(None)
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
            if k > num_input_frames and self._idle():
                break  # the input has ended, been processed, and every reply has played
            if k > 0:
                self._deliver_input(k - 1, user_audio)
            self._play(self.jitter.pull(n, tick_ms), tick_ms)
            if self.on_tick is not None:
                self.on_tick(tick_ms, self.state)
            k += 1

    def _deliver_input(self, i: int, user_audio: Pcm16) -> None:
        """Hand input frame ``i`` (audio time [i·F, (i+1)·F)) to the input worker."""
        n = self.frame_samples
        frame = user_audio[i * n : (i + 1) * n]
        if len(frame) < n:
            frame = np.concatenate([frame, np.zeros(n - len(frame), dtype=np.int16)])
        far_end = self.state.agent_frames[i]  # what the loudspeaker played meanwhile
        if self.mic is not None:
            frame = self.mic.process(frame, far_end)
            self.state.mic_frames.append(frame)
        self._input_q.put_nowait((i, frame, far_end))
        self._frames_delivered += 1
        self.state.input_frames_done = i + 1

    def _idle(self) -> bool:
        return (
            self._frames_processed == self._frames_delivered
            and not self.detector.in_turn
            and not self._responses
            and self._stt_q.empty()
        )

    def _play(self, frame: PlayoutFrame, tick_ms: float) -> None:
        self.state.agent_frames.append(frame.audio)
        self.state.agent_active.append(
            frame.agent_samples > 0 or self.jitter.playing_id is not None
        )
        rid = frame.response_id
        if rid is not None:
            handle = self._responses.get(rid)
            if frame.started and handle is not None:
                handle.turn.marks_ms.setdefault("playout_start", tick_ms)
            if frame.agent_samples:
                self._agent_played_ms += samples_to_ms(frame.agent_samples)
                self._last_agent_sample_ms[rid] = tick_ms + samples_to_ms(frame.agent_samples)
        for finished in frame.finished_ids:
            handle = self._responses.pop(finished, None)
            if handle is not None:
                self._complete_turn(handle, self.jitter.played_samples(finished))

    def _complete_turn(
        self, handle: ResponseHandle, played: int, interrupted: bool = False
    ) -> None:
        """The agent's reply to a turn is over: record what was heard, update history."""
        turn = handle.turn
        turn.agent_text = handle.generated_text.strip()
        turn.heard_text = handle.heard_text(played)
        turn.interrupted = interrupted
        turn.extra["played_samples"] = turn.extra.get("played_samples", 0) + played
        content = turn.heard_text if interrupted else turn.agent_text
        if content:  # a reply cut off before a word was heard leaves nothing to remember
            self.state.history.append(ChatMessage("assistant", content, interrupted))
        if self.on_turn is not None:
            self.on_turn(turn)

    # -- input: AEC, VAD, turns, barge-in ---------------------------------------------------

    def _front_end(self, mic: Pcm16, far_end: Pcm16) -> tuple[Pcm16, float]:
        """Blocking per-frame work: echo cancellation, then VAD on the cleaned signal."""
        clean = self.aec.process(mic, far_end) if self.aec is not None else mic
        return clean, self.vad.speech_probability(clean)

    async def _input_worker(self) -> None:
        frame_ms = self.config.frame_ms
        while (item := await self._input_q.get()) is not None:
            index, mic, far_end = item
            clean, prob = await run_blocking(self._front_end, mic, far_end)
            # The AEC delays its output; date frames by the audio they carry.
            start_ms = index * frame_ms - self._capture_delay_ms
            voiced_end_ms: float | None = None
            for vad_event in self.segmenter.push(prob, start_ms, frame_ms):
                if isinstance(vad_event, SpeechEnded):
                    voiced_end_ms = vad_event.end_ms
            self._pre_roll.append(clean)
            agent_playing = self.state.agent_active[index]
            self._barge_in_step(start_ms + frame_ms, agent_playing)
            was_in_turn = self.detector.in_turn
            events = self.detector.push(
                start_ms,
                start_ms + frame_ms,
                self.segmenter.is_speech,
                self._partial,
                clean,
                voiced_end_ms,
            )
            if was_in_turn and self.detector.in_turn:
                self._stt_q.put_nowait(_SttAudio(clean))
            for ev in events:
                match ev:
                    case TurnStarted():
                        self._partial = ""
                        self._turn_started_during_agent = (
                            agent_playing or self._interrupted is not None
                        )
                        self._stt_q.put_nowait(_SttStart())
                        for f in self._pre_roll:
                            self._stt_q.put_nowait(_SttAudio(f))
                    case EndOfTurn():
                        self._end_of_turn(ev)
                    case TurnDiscarded():
                        self._stt_q.put_nowait(_SttFinish(None))
                        if self.bargein is not None and self.bargein.pending:
                            self._resolve(self.bargein.on_user_turn_end("", self.clock.now_ms()))
                    case _:
                        pass
            self._frames_processed += 1

    def _barge_in_step(self, frame_end_ms: float, agent_playing: bool) -> None:
        if self.bargein is None:
            return
        # Armed while the agent speaks, and while a reply is being prepared: a user who goes
        # on talking after a false end-of-turn must not be talked over.
        armed = (agent_playing or bool(self._responses)) and (
            self._agent_played_ms >= self.config.aec_warmup_ms
        )
        for ev in self.bargein.push(
            frame_end_ms, armed, self.segmenter.is_speech, self.segmenter.speech_start_ms
        ):
            if isinstance(ev, BargeInDetected):
                self._interrupt(ev)
            else:
                self._resolve(ev)

    def _interrupt(self, det: BargeInDetected) -> None:
        """Barge-in: stop the reply now (one path: cancel its tasks, clear its playout).

        The reply stopped is the one playing, or else the newest one still being prepared.
        """
        rid = self.jitter.playing_id
        if rid is None and self._responses:
            rid = max(self._responses)
        handle = self._responses.get(rid) if rid is not None else None
        if handle is None or rid is None or self._interrupted is not None:
            return
        if handle.task is not None:
            handle.task.cancel()
        self.jitter.clear(rid)
        played = self.jitter.played_samples(rid)
        last_ms = self._last_agent_sample_ms.get(rid)
        record: dict[str, Any] = {
            "user_onset_ms": round(det.onset_ms, 3),
            "detected_ms": round(det.detected_ms, 3),
            "stopped_at_ms": round(self.clock.now_ms(), 3),
            "last_agent_sample_ms": None if last_ms is None else round(last_ms, 3),
            "reaction_ms": None
            if last_ms is None
            else round(reaction_ms(det.onset_ms, last_ms), 3),
            "while": "playing" if played else "preparing",
            "heard_words": len(handle.heard_text(played).split())
            - len(handle.heard_prefix.split()),
            "generated_words": len(handle.generated_text.split()),
            "resolution": "pending",
        }
        self.state.barge_ins.append(record)
        handle.turn.extra.setdefault("barge_ins", []).append(record)
        self._interrupted = (handle, played, record)

    def _resolve(
        self, resolution: FalseInterruption | Backchannel | InterruptionConfirmed | None
    ) -> None:
        """Settle a pending barge-in: resume the reply, or keep it cut at the heard words."""
        if resolution is None or self._interrupted is None:
            return
        handle, played, record = self._interrupted
        self._interrupted = None
        self._responses.pop(handle.response_id, None)
        if isinstance(resolution, InterruptionConfirmed):
            record["resolution"] = "confirmed"
            if not handle.heard_text(played):
                # Not a word of the reply was heard: the user paused and went on, so this is
                # still their turn (the end-of-turn was false). `_respond` merges the two.
                record["resolution"] = "continued"
                self._continued_turn = handle.turn
                return
            self._complete_turn(handle, played, interrupted=True)
            return
        record["resolution"] = (
            "backchannel" if isinstance(resolution, Backchannel) else "false_interruption"
        )
        turn = handle.turn
        turn.extra["resumes"] = turn.extra.get("resumes", 0) + 1
        remainder = resume_text(handle.generated_text, handle.words, played)
        heard_so_far = handle.heard_text(played)
        turn.extra["played_samples"] = turn.extra.get("played_samples", 0) + played
        if not remainder.strip():  # every word had been heard: nothing to resume
            handle.heard_prefix, handle.words = heard_so_far, []
            self._complete_turn(handle, 0)
            return
        resumed = ResponseHandle(self._next_response_id, turn, heard_prefix=heard_so_far)
        self._next_response_id += 1
        resumed.generated_text = handle.generated_text
        self._responses[resumed.response_id] = resumed
        self.state.responses.append(resumed)
        self.jitter.open(resumed.response_id)
        resumed.task = asyncio.create_task(self.runner.run(resumed, None, remainder))

    # -- turns and responses ----------------------------------------------------------------

    def _end_of_turn(self, ev: EndOfTurn) -> None:
        turn = TurnRecord(turn=0)  # numbered when it is answered
        turn.marks_ms["speech_end"] = ev.speech_end_ms
        turn.marks_ms["end_of_turn"] = self.clock.now_ms()
        turn.extra["speech_ms"] = ev.speech_ms
        final: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        self._stt_q.put_nowait(_SttFinish(final))
        handle = ResponseHandle(self._next_response_id, turn)
        self._next_response_id += 1
        self._responses[handle.response_id] = handle
        self.state.responses.append(handle)
        self.jitter.open(handle.response_id)
        during_agent = self._turn_started_during_agent
        handle.task = asyncio.create_task(self._respond(handle, final, during_agent))

    def _drop(self, handle: ResponseHandle) -> None:
        self._responses.pop(handle.response_id, None)
        self.jitter.clear(handle.response_id)

    async def _respond(
        self, handle: ResponseHandle, final: asyncio.Future[Transcript], during_agent: bool
    ) -> None:
        transcript = await final
        turn = handle.turn
        turn.marks_ms["stt_final"] = self.clock.now_ms()
        text = transcript.text
        if self.bargein is not None:
            if self.bargein.pending:
                resolution = self.bargein.on_user_turn_end(
                    text, self.clock.now_ms(), turn.extra.get("speech_ms")
                )
                self._resolve(resolution)
                if not isinstance(resolution, InterruptionConfirmed):
                    self._drop(handle)  # a backchannel or a noise: the reply resumed
                    return
            elif during_agent and (not text.strip() or is_backchannel(text, self.bargein.config)):
                self._drop(handle)  # "mm-hmm" under the agent's speech is not a turn
                return
        self._answer(turn, text)
        await self.runner.run(handle, list(self.state.history))
        if handle.synthesized_samples == 0 and handle.response_id in self._responses:
            # Nothing to play: the reply is over now.
            self._drop(handle)
            self._complete_turn(handle, 0)

    def _answer(self, turn: TurnRecord, text: str) -> None:
        """Number the turn and add the user's words to the history.

        After a false end-of-turn (the user went on before hearing a word of the reply), the
        continuation joins the earlier turn: one turn, one user message, and the false end is
        kept in ``extra["false_end_of_turn_ms"]``.
        """
        prev, self._continued_turn = self._continued_turn, None
        if prev is not None and prev in self.state.turns:
            text = f"{prev.user_text} {text}".strip()
            turn.turn = prev.turn
            turn.extra["false_end_of_turn_ms"] = prev.marks_ms.get("end_of_turn")
            turn.extra["barge_ins"] = prev.extra.get("barge_ins", [])
            self.state.turns[self.state.turns.index(prev)] = turn
            for i in range(len(self.state.history) - 1, -1, -1):
                if self.state.history[i].role == "user":
                    del self.state.history[i]
                    break
        else:
            turn.turn = len(self.state.turns) + 1
            self.state.turns.append(turn)
        turn.user_text = text
        self.state.history.append(ChatMessage("user", text))

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
                        if self.bargein is not None and self.bargein.pending:
                            self.bargein.on_words(self._partial, self.clock.now_ms())
                case _SttFinish():
                    transcript = await run_blocking(self.stt.finish) if active else Transcript("")
                    active = False
                    self._partial = ""
                    if item.result is not None and not item.result.done():
                        item.result.set_result(transcript)
