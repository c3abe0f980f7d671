"""The session: one call, wired from a transport, a listener, a conversation and a scheduler.

::

    transport ──push_input──▶ input worker ──▶ Listener (AEC → VAD → turns → barge-in)
        ▲                                        │ events
        │ pull_output / report_playout           ▼
    jitter buffer ◀── ResponseRunner ◀── Scheduler (TaskGroup) ◀── Conversation

* The **transport** (`earshot.transports.base.Transport`) paces the call: it pushes input
  frames stamped with their capture time, pulls output frames and reports what the caller's
  device played. The session implements its side, `earshot.transports.base.SessionPort`.
* The **input worker** runs the listener's blocking front end off the loop and acts on its
  events; the **STT worker** (`earshot.session.stt_worker`) feeds the recognizer.
* Every response runs in the **scheduler**'s TaskGroup. A barge-in goes through
  `ResponseHandle.interrupt` (the one path: cancel the work, clear the audio by id in the jitter
  buffer and the transport, record the reported played position).

Memory is bounded by the call's open state, not its length: no per-frame history is kept (the
recording is the transport's business, streamed to disk).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, samples_per_frame
from earshot.clock import Clock, run_blocking
from earshot.echo.aec import AcousticEchoCanceller
from earshot.levers.notes import bind_turn_notes
from earshot.levers.session_levers import HoldingBuffer, SessionLevers
from earshot.llm.base import ChatMessage, LanguageModel
from earshot.metrics.turn import BargeInRecord, TurnRecord
from earshot.playout.jitter import JitterBuffer
from earshot.session.config import SessionConfig
from earshot.session.conversation import Conversation, Resume
from earshot.session.events import (
    ResponseInterrupted,
    ResponseText,
    SessionEvent,
    SessionEventSink,
    TurnCompleted,
    UserSpeechStarted,
    UserTranscriptFinal,
    UserTranscriptPartial,
)
from earshot.session.events import UserTurnEnded as TurnEndedEvent
from earshot.session.listener import (
    BargeIn,
    BargeInSettled,
    Listener,
    ListenerEvent,
    PauseTranscriptSource,
    SpeechPaused,
    SpeechResumed,
    UserAudio,
    UserTurnDiscarded,
    UserTurnEnded,
    UserTurnStarted,
)
from earshot.session.playout import PlayoutLedger, apply_heard_start, uplink_timing
from earshot.session.response import ResponseFailed, ResponseHandle, ResponseRunner
from earshot.session.scheduler import Scheduler
from earshot.session.stt_worker import SttAudio, SttFinish, SttPause, SttResume, SttStart, SttWorker
from earshot.stt.base import StreamingRecognizer, Transcript
from earshot.transports.base import (
    InputFrame,
    OutputFrame,
    PlayoutReport,
    Transport,
    TransportError,
)
from earshot.tts.base import Synthesizer
from earshot.turns.bargein import (
    BargeInConfig,
    BargeInDetected,
    BargeInResolution,
    InterruptionConfirmed,
)
from earshot.turns.endpointer import Endpointer
from earshot.vad.base import VoiceActivityDetector

log = logging.getLogger("earshot.session")


@dataclass(slots=True)
class SessionState:
    """What the session has produced so far; readable after an interruption (Ctrl-C).

    Attributes:
        turns: answered turns in order (finished, and at the end unfinished ones).
        history: the chat history.
        barge_ins: every barge-in record with its resolution (also in its turn record).
        responses: every response started, in order (a resumed reply has its own handle).
        failures: every `ResponseFailed` event, in order.
        input_frames_done: input frames pushed by the transport.
        output_frames_done: output frames pulled by the transport.
        unfinished: turns written as unfinished when the run ended.
        transport_error: why the transport failed, if it did.
    """

    turns: list[TurnRecord] = field(default_factory=list)
    history: list[ChatMessage] = field(default_factory=list)
    barge_ins: list[BargeInRecord] = field(default_factory=list)
    responses: list[ResponseHandle] = field(default_factory=list)
    failures: list[ResponseFailed] = field(default_factory=list)
    input_frames_done: int = 0
    output_frames_done: int = 0
    unfinished: list[TurnRecord] = field(default_factory=list)
    transport_error: str | None = None


class Session:
    """One conversation with a caller over a `Transport`.

    Args:
        config: frame size, thresholds, jitter buffer, response bounds.
        clock: the session clock; ``now_ms()`` must read 0 when `run` starts.
        vad, stt, llm, tts: the stage backends.
        endpointer: the end-of-turn policy.
        bargein: barge-in thresholds; None disables barge-in.
        aec: echo canceller run on input frames that carry a far-end reference.
        on_turn: called with each turn record once its reply is over (or cut off, or
            unfinished at the end).
        on_tick: called after every output frame with the session time and the state.
        on_failure: called with every `ResponseFailed`.
        levers: latency levers acting inside the loop (response cache, preemptive
            generation; `earshot.levers.session_levers`); None runs without them.
        on_event: called with every `earshot.session.events.SessionEvent` (a transport that
            is a `SessionEventSink` gets them too).
        pause_transcript: the transcript the end-of-turn policy reads at each pause
            (`earshot.stt.whisper_pause.PauseTranscript`: one Whisper decode of the turn's
            last 3 s); None: it reads the STT's streaming partials.
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
        on_turn: Callable[[TurnRecord], None] | None = None,
        on_tick: Callable[[float, SessionState], None] | None = None,
        on_failure: Callable[[ResponseFailed], None] | None = None,
        levers: SessionLevers | None = None,
        on_event: Callable[[SessionEvent], None] | None = None,
        pause_transcript: PauseTranscriptSource | None = None,
    ) -> None:
        self.config = config
        self.on_event = on_event
        self._on_turn = on_turn
        self.clock = clock
        self.stt = stt
        self.on_tick = on_tick
        self.on_failure = on_failure
        self.frame_samples = samples_per_frame(config.frame_ms)
        self.listener = Listener(
            vad,
            endpointer,
            frame_ms=config.frame_ms,
            vad_threshold=config.vad_threshold,
            min_speech_ms=config.min_speech_ms,
            pre_roll_ms=config.pre_roll_ms,
            bargein=bargein,
            aec=aec,
            aec_warmup_ms=config.aec_warmup_ms,
            pause_transcript=pause_transcript,
        )
        self.jitter = JitterBuffer(config.jitter_ms, SAMPLE_RATE_HZ)
        self.holding = HoldingBuffer(self.jitter)
        self.runner = ResponseRunner(
            clock,
            llm,
            tts,
            self.holding,
            on_failure=self._failed,
            max_lookahead_ms=config.max_lookahead_ms,
            no_audio_timeout_ms=config.no_audio_timeout_ms,
            on_text=self.text_out,
        )
        self.state = SessionState()
        self.conversation = Conversation(
            self.state.turns, self.state.history, self.state.barge_ins, on_turn=self._turn_done
        )
        self.stt_worker = SttWorker(stt, self._on_partial)
        self.transport: Transport | None = None
        self._scheduler: Scheduler | None = None
        self._input_q: asyncio.Queue[InputFrame | None] = asyncio.Queue()
        self._responses: dict[int, ResponseHandle] = {}
        self._next_response_id = 1
        self._frames_pushed = 0
        self._frames_processed = 0
        self.playout = PlayoutLedger(self.jitter, config.frame_ms)
        self._last_input: InputFrame | None = None
        self._turn_during_agent = False
        self._closed = False
        self.levers = levers
        if levers is not None:
            levers.attach(self)
        self._partial = ""

    # -- SessionPort -----------------------------------------------------------------------

    @property
    def frame_ms(self) -> int:
        return self.config.frame_ms

    @property
    def idle(self) -> bool:
        return (
            self._frames_processed == self._frames_pushed
            and not self.listener.in_turn
            and not self._responses
            and not self.stt_worker.busy
        )

    def push_input(self, frame: InputFrame) -> None:
        pcm = frame.pcm
        if pcm.dtype != np.int16 or pcm.shape != (self.frame_samples,):
            raise ValueError(
                f"input frame must be 1-D int16 of {self.frame_samples} samples "
                f"({self.frame_ms} ms at 16 kHz), got {pcm.dtype} {pcm.shape}"
            )
        self._frames_pushed += 1
        self.state.input_frames_done += 1
        self._input_q.put_nowait(frame)

    def pull_output(self, num_samples: int, now_ms: float) -> OutputFrame:
        pulled = self.playout.pull(num_samples, now_ms)
        if pulled.started is not None:
            handle = self._responses.get(pulled.started)
            if handle is not None:
                handle.turn.marks_ms.setdefault("playout_start", now_ms)
        for rid, played in pulled.completed:
            self._complete(rid, played)
        self.state.output_frames_done += 1
        if self.on_tick is not None:
            self.on_tick(now_ms, self.state)
        return pulled.frame

    def report_playout(self, report: PlayoutReport) -> None:
        kept, completed = self.playout.report(report)
        if not kept:
            return  # reports are cumulative; an older one arrived late
        handle = self._responses.get(report.response_id)
        if handle is not None:
            handle.played_samples = report.played_samples
            if self.playout.device_playout:
                apply_heard_start(handle.turn, report)
        if completed is not None:
            self._complete(*completed)

    # -- running ---------------------------------------------------------------------------

    async def run(self, transport: Transport | Pcm16) -> SessionState:
        """Converse over ``transport`` until it ends (input over and idle, or caller gone).

        A bare int16 16 kHz array is wrapped in a `earshot.transports.file.FileTransport`
        (no recording, no room).

        Turns still pending or playing when the run ends (the transport returned, Ctrl-C,
        cancellation) are written through ``on_turn`` as unfinished.

        Raises:
            ValueError: a bare array that is not 1-D int16.
            TransportError: the transport's medium failed (also kept in
                ``state.transport_error``); the turns so far are written as usual.
        """
        if not isinstance(transport, Transport):
            from earshot.transports.file import ArraySource, FileTransport

            transport = FileTransport(
                ArraySource(transport), self.clock, max_tail_ms=self.config.max_tail_ms
            )
        self.transport = transport
        self.playout.device_playout = transport.reports_device_playout
        failure: TransportError | None = None
        try:
            # The scheduler encloses the workers: an end-of-turn the input worker reaches
            # while draining its queue after the transport ended still finds it open.
            async with Scheduler(self._failed) as scheduler, asyncio.TaskGroup() as tg:
                self._scheduler = scheduler
                tg.create_task(self._input_worker())
                tg.create_task(self.stt_worker.run())
                if self.levers is not None:
                    tg.create_task(self.levers.session_started())
                try:
                    await transport.run(self)
                except TransportError as exc:  # raised below, outside the TaskGroup
                    failure = exc
                    self.state.transport_error = str(exc)
                    log.error("transport %s failed: %s", transport.name, exc)
                finally:
                    self._input_q.put_nowait(None)
                    self.stt_worker.queue.put_nowait(None)
                    scheduler.cancel_all()
        finally:
            self._scheduler = None
            self.close_open_turns()
        if failure is not None:
            raise failure
        return self.state

    def close_open_turns(self) -> list[TurnRecord]:
        """Write every answered turn whose reply had not finished as unfinished (idempotent;
        `run` calls it on the way out, a caller whose loop was torn down may call it too)."""
        if self._closed:
            return []
        self._closed = True
        handles = sorted(self._responses.values(), key=lambda h: h.response_id)
        closed = self.conversation.close_unfinished(handles)
        self.state.unfinished.extend(closed)
        return closed

    # -- input ---------------------------------------------------------------------------------

    async def _input_worker(self) -> None:
        while (frame := await self._input_q.get()) is not None:
            try:
                clean, prob = await run_blocking(self.listener.front_end, frame.pcm, frame.far_end)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a VAD/AEC failure: this frame counts as silence
                log.warning("input frame at %.0f ms: front end failed: %s", frame.capture_ms, exc)
                clean, prob = frame.pcm, 0.0
            self._last_input = frame
            events = self.listener.decide(
                clean,
                prob,
                frame.capture_ms,
                self.playout.playing_during(frame.capture_ms),
                self.clock.now_ms(),
                reply_pending=bool(self._responses),
            )
            for event in events:
                self._dispatch(event)
            if self.levers is not None:
                self.levers.poll(self.clock.now_ms())
            self._frames_processed += 1

    def _dispatch(self, event: ListenerEvent) -> None:
        q = self.stt_worker.queue
        match event:
            case UserTurnStarted():
                self._turn_during_agent = event.during_agent
                if self.levers is not None:
                    self.levers.turn_started(self.clock.now_ms())
                self._emit(UserSpeechStarted(event.start_ms))
                q.put_nowait(SttStart())
                for pcm in event.pre_roll:
                    q.put_nowait(SttAudio(pcm))
            case UserAudio():
                q.put_nowait(SttAudio(event.pcm))
            case SpeechPaused():
                q.put_nowait(SttPause())
                if self.levers is not None:
                    self.levers.speech_paused(event.end_ms)
            case SpeechResumed():
                q.put_nowait(SttResume())
                if self.levers is not None:
                    self.levers.speech_resumed(self.clock.now_ms())
            case UserTurnEnded():
                self._end_of_turn(event)
            case UserTurnDiscarded():
                q.put_nowait(SttFinish(None))
            case BargeIn():
                self._interrupt(event.detection)
            case BargeInSettled():
                self._settle(event.resolution)

    def _on_partial(self, text: str) -> None:
        now_ms = self.clock.now_ms()
        self.listener.on_partial(text, now_ms)
        if text != self._partial:
            self._partial = text
            self._emit(UserTranscriptPartial(text, now_ms))
        if self.levers is not None:
            self.levers.partial(text, now_ms)

    # -- events ----------------------------------------------------------------------------

    def _emit(self, event: SessionEvent) -> None:
        sinks: list[Callable[[SessionEvent], None]] = []
        if self.on_event is not None:
            sinks.append(self.on_event)
        if isinstance(self.transport, SessionEventSink):
            sinks.append(self.transport.on_session_event)
        for sink in sinks:
            try:
                sink(event)
            except Exception as exc:  # a broken listener never ends the call
                log.warning("session event handler failed on %s: %s", type(event).__name__, exc)

    def _turn_done(self, turn: TurnRecord) -> None:
        if self._on_turn is not None:
            self._on_turn(turn)
        self._emit(TurnCompleted(turn))

    def text_out(self, handle: ResponseHandle, text: str) -> None:
        """Emit the reply's text as it goes out (nothing while the reply is held back)."""
        if self.holding.held(handle.response_id):
            return  # a speculative reply (preemptive generation): nothing of it is out yet
        self._emit(ResponseText(handle.response_id, text, self.clock.now_ms()))

    # -- barge-in ------------------------------------------------------------------------------

    def clear_audio(self, handle: ResponseHandle) -> int:
        """`ResponseHandle.on_interrupt`: clear the audio by id (jitter buffer and transport),
        return the played position the transport reported."""
        played = self.playout.clear(handle.response_id)
        if self.transport is not None:
            self.transport.clear(handle.response_id)
        return played

    def _interrupt(self, det: BargeInDetected) -> None:
        """Barge-in: stop the reply playing, or else the newest one being prepared."""
        rid = self.jitter.playing_id
        if rid is None and self._responses:
            rid = max(self._responses)
        handle = self._responses.get(rid) if rid is not None else None
        if handle is None or self.conversation.interruption_pending:
            return
        played = handle.interrupt()
        last_ms = self.playout.last_sample_ms(handle.response_id)
        record = self.conversation.stopped(handle, det, played, self.clock.now_ms(), last_ms)
        self._emit(ResponseInterrupted(handle.response_id, played, record))

    def _settle(self, resolution: BargeInResolution | None) -> None:
        if resolution is None:
            return
        settled = self.conversation.settle(resolution)
        if settled is None:
            return
        handle, resume = settled
        self._responses.pop(handle.response_id, None)
        self.playout.forget(handle.response_id)
        if resume is not None:
            self._resume(resume)

    def _resume(self, resume: Resume) -> None:
        handle = self.new_handle(resume.turn, heard_prefix=resume.heard_prefix)
        handle.generated_text = resume.generated_text
        self._start(handle, self.runner.run(handle, None, resume.text))

    # -- turns and responses -------------------------------------------------------------------

    def new_handle(self, turn: TurnRecord, heard_prefix: str = "") -> ResponseHandle:
        """A response for ``turn``: numbered, tracked, its audio opened in the jitter buffer."""
        handle = ResponseHandle(self._next_response_id, turn, heard_prefix=heard_prefix)
        handle.on_interrupt = self.clear_audio
        self._next_response_id += 1
        self._responses[handle.response_id] = handle
        self.state.responses.append(handle)
        self.jitter.open(handle.response_id)
        return handle

    # -- what `SessionLevers` acts through (its `LeverHost`) ----------------------------------

    @property
    def history(self) -> list[ChatMessage]:
        """The chat history so far (what the next request is built on)."""
        return self.state.history

    @property
    def running(self) -> bool:
        """The session's task group is up: responses can be started."""
        return self._scheduler is not None

    @property
    def replying(self) -> bool:
        """A reply is being prepared or played."""
        return bool(self._responses)

    def new_response_id(self) -> int:
        """A response id not used before in this session."""
        rid = self._next_response_id
        self._next_response_id += 1
        return rid

    def start_untracked(
        self,
        handle: ResponseHandle,
        work: Coroutine[Any, Any, None],
        cleanup: Callable[[ResponseHandle], None],
    ) -> None:
        """Run ``work`` for a response the session does not track yet (a speculation) in the
        session's task group; ``cleanup`` runs whatever happens.

        Raises:
            RuntimeError: the session is not running.
        """
        if self._scheduler is None:
            work.close()
            raise RuntimeError("responses start only while the session runs")
        self._scheduler.start(handle, work, cleanup=cleanup)

    def is_tracked(self, response_id: int) -> bool:
        """The response is one the session is preparing or playing."""
        return response_id in self._responses

    def untrack(self, response_id: int) -> None:
        """Stop tracking a response (its audio is the caller's business)."""
        self._responses.pop(response_id, None)

    def track(self, handle: ResponseHandle) -> None:
        """Track a response started untracked: it is now the turn's reply."""
        self._responses[handle.response_id] = handle
        self.state.responses.append(handle)

    def _start(self, handle: ResponseHandle, work: Coroutine[Any, Any, None]) -> None:
        if self._scheduler is None:
            work.close()
            raise RuntimeError("responses start only while the session runs")
        self._scheduler.start(handle, work, cleanup=self._response_done)

    def _response_done(self, handle: ResponseHandle) -> None:
        self.jitter.end(handle.response_id)  # whatever happened, playout moves on

    def _end_of_turn(self, ev: UserTurnEnded) -> None:
        turn = TurnRecord(turn=0)  # numbered when it is answered
        turn.marks_ms["speech_end"] = ev.eot.speech_end_ms
        turn.marks_ms["end_of_turn"] = self.clock.now_ms()
        turn.extra["speech_ms"] = ev.eot.speech_ms
        if self.playout.device_playout:
            turn.network = uplink_timing(self._last_input, self.config.frame_ms)
        final: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        self.stt_worker.queue.put_nowait(SttFinish(final))
        handle = self.new_handle(turn)
        self._emit(TurnEndedEvent(handle.response_id, ev.eot.speech_end_ms, self.clock.now_ms()))
        if self.levers is not None:
            work = self.levers.respond(handle, final, self._turn_during_agent)
        else:
            work = self._respond(handle, final, self._turn_during_agent)
        self._start(handle, work)

    def _complete(self, rid: int, played: int) -> None:
        handle = self._responses.pop(rid, None)
        self.playout.forget(rid)
        if handle is not None:
            handle.played_samples = played
            self.conversation.complete(handle, played)
            if self.levers is not None:
                self.levers.completed(handle)

    def drop(self, handle: ResponseHandle) -> None:
        """Forget a response that will not be the turn's reply, and its audio."""
        self._responses.pop(handle.response_id, None)
        self.jitter.clear(handle.response_id)

    def _failed(self, event: ResponseFailed) -> None:
        self.state.failures.append(event)
        if self.on_failure is not None:
            self.on_failure(event)
        self._emit(event)

    async def _respond(
        self, handle: ResponseHandle, final: asyncio.Future[Transcript], during_agent: bool
    ) -> None:
        text = await self.final_text(handle.turn, final)
        await self.respond_to(handle, text, during_agent)

    async def final_text(self, turn: TurnRecord, final: asyncio.Future[Transcript]) -> str:
        """Wait for the final transcript; mark ``stt_final`` (an STT failure gives "")."""
        try:
            transcript = await final
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            turn.extra["stt_error"] = f"{type(exc).__name__}: {exc}"
            transcript = Transcript("")
        turn.marks_ms["stt_final"] = self.clock.now_ms()
        if transcript.decode_ms:
            turn.extra["stt_decode_ms"] = [round(v, 3) for v in transcript.decode_ms]
        if transcript.early_final is not None:
            turn.extra["stt_early_final"] = transcript.early_final
        return transcript.text

    def takes_turn(self, handle: ResponseHandle, text: str, during_agent: bool) -> bool:
        """Settle a pending barge-in with this transcript; False if it is not a turn (the
        reply resumed, or a backchannel under the agent's speech): the handle is dropped."""
        turn = handle.turn
        if self.listener.bargein is not None:
            if self.listener.bargein_pending:
                resolution = self.listener.on_transcript(
                    text, self.clock.now_ms(), turn.extra.get("speech_ms")
                )
                self._settle(resolution)
                if not isinstance(resolution, InterruptionConfirmed):
                    self.drop(handle)  # a backchannel or a noise: the reply resumed
                    return False
            elif during_agent and self.listener.is_backchannel(text):
                self.drop(handle)  # "mm-hmm" under the agent's speech is not a turn
                return False
        return True

    async def respond_to(self, handle: ResponseHandle, text: str, during_agent: bool) -> None:
        """Answer ``text`` (the final transcript) with a generated reply."""
        if not self.takes_turn(handle, text, during_agent):
            return
        self.answer(handle, text)
        with bind_turn_notes(handle.turn.extra, handle.turn.marks_ms):
            await self.runner.run(handle, list(self.state.history))

    def answer(self, handle: ResponseHandle, text: str) -> None:
        """Record ``text`` as the caller's words for this turn (history, events)."""
        turn = handle.turn
        self.conversation.answer(turn, text)
        self._emit(UserTranscriptFinal(handle.response_id, turn.turn, text, self.clock.now_ms()))
