"""The audio/model engine behind the OpenAI Realtime endpoint, on the session's shared parts.

It takes `earshot.protocols.engine_types` commands and answers with engine events. It owns no
orchestration of its own: every decision is made by the same pieces a `earshot.session`
call runs on.

* **input**: audio of any chunk size is cut into frames. With turn detection on, each frame
  goes through `earshot.session.listener.Listener` (VAD off the loop, then the pure segmenter
  → turn detector with the configured end-pointer: fixed silence for ``server_vad``, earshot's
  smart end-pointer for ``semantic_vad``); the turn's audio, with ``prefix_padding_ms`` of audio
  before the speech start, streams into the recognizer through
  `earshot.session.stt_worker.SttWorker` while the user talks, and its partials go back to the
  listener. With turn detection off, every appended frame streams into the recognizer until the
  client commits. Times are input-audio ms from sample counts; the session-clock
  ``speech_end`` is the arrival of the chunk that carried the last voiced sample.
* **responses**: each is a `earshot.session.response.ResponseRunner` run (LLM → sentence
  chunker with its time/length bound → `earshot.text.sanitize` → TTS, the look-ahead bound and
  the no-audio timeout) owned by a `earshot.session.scheduler.Scheduler`; its audio goes to
  `_ClientOutlet`, an `AudioSink` whose "playout" is the client's. Every cancellation
  (``response.cancel``, server-VAD barge-in, truncation of the active item) is
  `ResponseHandle.interrupt`. A failure becomes a `ResponseFinished` with the error; it never
  ends the connection.

Interruption *policy* stays with the protocol state machine: the API cancels on the speech
start itself (no barge-in thresholds), so the listener runs without a barge-in policy and the
machine answers `SpeechStarted` with `CancelResponse`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, samples_per_frame, samples_to_ms
from earshot.clock import Clock, run_blocking
from earshot.llm.base import LanguageModel
from earshot.metrics.turn import TurnRecord
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
from earshot.session.config import SessionConfig
from earshot.session.listener import (
    Listener,
    SpeechPaused,
    SpeechResumed,
    UserAudio,
    UserTurnDiscarded,
    UserTurnEnded,
    UserTurnStarted,
)
from earshot.session.response import ResponseFailed, ResponseHandle, ResponseRunner
from earshot.session.scheduler import Scheduler
from earshot.session.stt_worker import SttAudio, SttFinish, SttPause, SttResume, SttStart, SttWorker
from earshot.stt.base import StreamingRecognizer, Transcript
from earshot.tts.base import Synthesizer
from earshot.turns.endpointer import Endpointer, FixedEndpointer
from earshot.vad.base import VoiceActivityDetector

log = logging.getLogger(__name__)

CONFIRM_FRAMES = 10
"""Frames kept before a speech start beyond ``prefix_padding_ms``: the VAD confirms a start a
few frames after the run's first voiced frame, and the padding is counted from that frame."""


@dataclass(slots=True)
class EngineComponents:
    """One connection's stage backends (the recognizer keeps per-utterance state: one each)."""

    vad: VoiceActivityDetector
    stt: StreamingRecognizer
    llm: LanguageModel
    tts: Synthesizer
    closers: tuple[Callable[[], None], ...] = ()
    """Stop what this connection's backends own (e.g. the recognizer's worker thread) when
    the connection ends; shared models stay loaded."""


def smart_endpointer(scale: float) -> Endpointer:
    """earshot's smart end-pointer with every silence bound multiplied by ``scale``."""
    from earshot.turns.endpointing_rules import load_rules
    from earshot.turns.smart import SmartEndpointer

    rules = load_rules(None)
    b = rules.bounds_ms
    bounds = b.model_copy(update={k: getattr(b, k) * scale for k in type(b).model_fields})
    return SmartEndpointer(rules.model_copy(update={"bounds_ms": bounds}))


@dataclass(slots=True)
class _Stream:
    """What the outlet knows of one response on its way to the client."""

    wire_id: str
    handle: ResponseHandle
    audio: bool
    words_sent: int = 0
    sent_samples: int = 0
    first_send_ms: float | None = None
    pending_text: str = ""
    cleared: bool = False


@dataclass(slots=True)
class _ClientOutlet:
    """The `AudioSink` of the Realtime endpoint: a response's audio becomes engine events
    (audio deltas on the socket); the client plays it.

    The client's playback cannot be seen, so "queued, not yet played" is estimated as real-time
    playback from the first chunk sent; the runner's look-ahead bound keeps TTS at most
    ``max_lookahead_ms`` ahead of that.
    """

    clock: Clock
    emit: Callable[[EngineEvent], None]
    streams: dict[int, _Stream] = field(default_factory=dict)

    def open(self, response_id: int, stream: _Stream) -> None:
        self.streams[response_id] = stream

    def close(self, response_id: int) -> None:
        self.streams.pop(response_id, None)

    def text(self, handle: ResponseHandle, text: str) -> None:
        """A sentence goes to TTS: its transcript delta is sent with its first audio (a
        sentence the TTS cannot speak never reaches the transcript)."""
        stream = self.streams.get(handle.response_id)
        if stream is not None:
            stream.pending_text = text

    def delta(self, handle: ResponseHandle, text: str) -> None:
        """LLM text of a text-only response, sent as it streams."""
        stream = self.streams.get(handle.response_id)
        if stream is not None and not stream.audio and not stream.cleared:
            self.emit(ResponseText(stream.wire_id, text))

    def push(self, response_id: int, audio: Pcm16, now_ms: float) -> bool:
        stream = self.streams.get(response_id)
        if stream is None or stream.cleared:
            return False
        if stream.pending_text:
            self.emit(ResponseText(stream.wire_id, stream.pending_text + " "))
            stream.pending_text = ""
        handle = stream.handle
        words = tuple(handle.words[stream.words_sent :])
        stream.words_sent = len(handle.words)
        if stream.first_send_ms is None:
            stream.first_send_ms = now_ms
        stream.sent_samples += len(audio)
        self.emit(ResponseAudio(stream.wire_id, audio, words, dict(handle.turn.marks_ms)))
        return True

    def end(self, response_id: int) -> None:
        """Nothing to flush: each chunk went out as it came."""

    def buffered_ms_of(self, response_id: int) -> float:
        stream = self.streams.get(response_id)
        if stream is None or stream.first_send_ms is None:
            return 0.0
        played_ms = max(0.0, self.clock.now_ms() - stream.first_send_ms)
        return max(0.0, samples_to_ms(stream.sent_samples) - played_ms)

    def clear(self, handle: ResponseHandle) -> int:
        """`ResponseHandle.interrupt`'s hook: drop the rest; the played-position estimate."""
        stream = self.streams.get(handle.response_id)
        if stream is None:
            return handle.played_samples
        stream.cleared = True
        if stream.first_send_ms is None:
            return 0
        played_ms = max(0.0, self.clock.now_ms() - stream.first_send_ms)
        return min(stream.sent_samples, int(played_ms * SAMPLE_RATE_HZ / 1000))


_InputItem = AppendAudio | CommitInput | ClearInput | Configure


class ProtocolEngine:
    """Runs the models for one connection.

    Args:
        components: the stage backends.
        clock: the connection's session clock.
        emit: called (on the event loop, synchronously) with every engine event.
        frame_ms: frame size of the listener (10, 20 or 40 ms).
        config: the session settings this endpoint shares with other calls (``min_speech_ms``;
            ``max_lookahead_ms``: most of a reply sent ahead of the client's estimated
            playback; ``no_audio_timeout_ms``); the defaults if None. The VAD threshold and
            pre-roll come from the client's ``turn_detection`` instead.
    """

    def __init__(
        self,
        components: EngineComponents,
        clock: Clock,
        emit: Callable[[EngineEvent], None],
        frame_ms: int = 20,
        *,
        config: SessionConfig | None = None,
    ) -> None:
        self.config = config or SessionConfig()
        self.c = components
        self.clock = clock
        self.emit = emit
        self.frame_ms = frame_ms
        self.frame_samples = samples_per_frame(frame_ms)
        self.outlet = _ClientOutlet(clock, emit)
        self.runner = ResponseRunner(
            clock,
            components.llm,
            components.tts,
            self.outlet,
            on_failure=self._failed,
            max_lookahead_ms=self.config.max_lookahead_ms,
            no_audio_timeout_ms=self.config.no_audio_timeout_ms,
            on_text=self.outlet.text,
            on_delta=self.outlet.delta,
        )
        self.scheduler = Scheduler(on_failure=self._failed)
        self.stt = SttWorker(components.stt, self._on_partial)
        self._input: asyncio.Queue[_InputItem] = asyncio.Queue()
        self._running = False
        self._pending_starts: list[StartResponse] = []
        self._handles: dict[str, ResponseHandle] = {}
        self._failures: dict[int, list[ResponseFailed]] = {}
        self._settled: set[int] = set()
        self._next_id = 1
        self._listener: Listener | None = None
        self._turn: TurnSettings | None = None
        self._carry = np.zeros(0, dtype=np.int16)
        self._frames_done = 0
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=4096)
        self._audio_in_ms = 0.0
        self._segment_open = False
        self._segment_samples = 0

    # -- commands --------------------------------------------------------------------------

    def submit(self, cmd: EngineCommand) -> None:
        """Take a command (non-blocking; input commands are handled in order)."""
        match cmd:
            case StartResponse():
                if self._running:
                    self._start(cmd)
                else:
                    self._pending_starts.append(cmd)
            case CancelResponse():
                handle = self._handles.get(cmd.response_id)
                if handle is not None:
                    handle.interrupt()
            case AppendAudio():
                self._audio_in_ms += samples_to_ms(len(cmd.pcm))
                end_ms = self._audio_in_ms if cmd.audio_end_ms is None else cmd.audio_end_ms
                self._arrivals.append((end_ms, cmd.arrival_ms))
                self._input.put_nowait(cmd)
            case _:
                self._input.put_nowait(cmd)

    async def run(self) -> None:
        """Serve commands until cancelled (the connection closed)."""
        async with self.scheduler:
            self._running = True
            try:
                for cmd in self._pending_starts:
                    self._start(cmd)
                self._pending_starts.clear()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.stt.run())
                    tg.create_task(self._input_worker())
            finally:
                self._running = False

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
                    self._close_segment()
                    self._carry = np.zeros(0, dtype=np.int16)
                case Configure():
                    self._configure(item.turn)

    def _configure(self, turn: TurnSettings | None) -> None:
        self._turn = turn
        if turn is None:
            self._listener = None
            return
        endpointer = (
            FixedEndpointer(turn.silence_ms)
            if turn.endpointer == "fixed"
            else smart_endpointer(turn.scale)
        )
        self._listener = Listener(
            self.c.vad,
            endpointer,
            frame_ms=self.frame_ms,
            vad_threshold=turn.threshold,
            min_speech_ms=self.config.min_speech_ms,
            pre_roll_ms=turn.prefix_padding_ms + CONFIRM_FRAMES * self.frame_ms,
        )

    async def _append(self, pcm: Pcm16) -> None:
        audio = np.concatenate([self._carry, pcm]) if self._carry.size else pcm
        n = self.frame_samples
        whole = len(audio) // n * n
        self._carry = audio[whole:].copy()
        for start in range(0, whole, n):
            await self._frame(audio[start : start + n])

    async def _frame(self, frame: Pcm16) -> None:
        start_ms = float(self._frames_done * self.frame_ms)
        self._frames_done += 1
        listener = self._listener
        if listener is None or self._turn is None:
            if not self._segment_open:
                self._open_segment(())
            self._feed(frame)
            return
        clean, prob = await run_blocking(listener.front_end, frame)
        now_ms = self.clock.now_ms()
        for event in listener.decide(clean, prob, start_ms, False, now_ms):
            match event:
                case UserTurnStarted():
                    self._turn_started(listener, event, start_ms, self._turn.prefix_padding_ms)
                case UserAudio() if self._segment_open:
                    self._feed(event.pcm)
                case SpeechPaused() if self._segment_open:
                    self.stt.queue.put_nowait(SttPause())
                case SpeechResumed() if self._segment_open:
                    self.stt.queue.put_nowait(SttResume())
                case UserTurnEnded(eot=eot):
                    reason = getattr(listener.detector.endpointer, "last_decision_reason", "")
                    self.emit(
                        SpeechStopped(
                            audio_end_ms=eot.decided_at_ms,
                            speech_end_audio_ms=eot.speech_end_ms,
                            speech_end_ms=self._arrival_of(eot.speech_end_ms),
                            end_of_turn_ms=now_ms,
                            endpointer_reason=str(reason),
                        )
                    )
                case UserTurnDiscarded():
                    self._close_segment()
                    self.emit(SpeechDiscarded(event.end_ms))
                case _:
                    pass

    def _turn_started(
        self, listener: Listener, event: UserTurnStarted, frame_start_ms: float, prefix_ms: float
    ) -> None:
        # The VAD dates speech from the first frame of its voiced run; the pre-roll ends with
        # the frame that confirmed it. Keep ``prefix_ms`` of audio before the speech start.
        speech_ms = listener.segmenter.speech_start_ms
        speech_ms = event.start_ms if speech_ms is None else speech_ms
        count = len(event.pre_roll)
        starts = [frame_start_ms - (count - 1 - i) * self.frame_ms for i in range(count)]
        first_ms = speech_ms - prefix_ms - 1e-6
        kept = [(t, f) for t, f in zip(starts, event.pre_roll, strict=True) if t >= first_ms]
        self._open_segment(tuple(f for _, f in kept))
        self.emit(SpeechStarted(kept[0][0] if kept else frame_start_ms, speech_ms))

    def _on_partial(self, text: str) -> None:
        if self._listener is not None:
            self._listener.on_partial(text, self.clock.now_ms())

    def _arrival_of(self, audio_ms: float) -> float:
        for end_ms, arrival_ms in self._arrivals:
            if end_ms >= audio_ms - 1e-6:
                return arrival_ms
        return self.clock.now_ms()

    def _open_segment(self, frames: tuple[Pcm16, ...]) -> None:
        if self._segment_open:
            self._close_segment()
        self.stt.queue.put_nowait(SttStart())
        self._segment_open = True
        self._segment_samples = 0
        for f in frames:
            self._feed(f)

    def _feed(self, pcm: Pcm16) -> None:
        self.stt.queue.put_nowait(SttAudio(pcm))
        self._segment_samples += len(pcm)

    def _close_segment(self) -> None:
        if self._segment_open:
            self.stt.queue.put_nowait(SttFinish(None))
        self._segment_open = False
        self._segment_samples = 0

    async def _commit(self, item_id: str) -> None:
        if self._turn is None and self._carry.size:
            if not self._segment_open:
                self._open_segment(())
            self._feed(self._carry)
            self._carry = np.zeros(0, dtype=np.int16)
        text, audio_ms = "", samples_to_ms(self._segment_samples)
        if self._segment_open:
            final: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
            self.stt.queue.put_nowait(SttFinish(final))
            self._segment_open = False
            self._segment_samples = 0
            try:
                text = (await final).text
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the recognizer failed: an empty transcript, logged
                log.warning("realtime: transcription of %s failed: %s", item_id, exc)
        if self._listener is not None:
            self._listener.on_transcript(text, self.clock.now_ms())
        self.emit(Transcribed(item_id, text, audio_ms, self.clock.now_ms()))

    # -- responses -------------------------------------------------------------------------

    def _start(self, cmd: StartResponse) -> None:
        handle = ResponseHandle(self._next_id, TurnRecord(turn=0))
        self._next_id += 1
        handle.on_interrupt = self.outlet.clear
        self._handles[cmd.response_id] = handle
        self.outlet.open(handle.response_id, _Stream(cmd.response_id, handle, cmd.audio))
        self.scheduler.start(handle, self._respond(handle, cmd), cleanup=self._cleanup)

    async def _respond(self, handle: ResponseHandle, cmd: StartResponse) -> None:
        if cmd.speak_text is not None:
            await self.runner.run(handle, None, cmd.speak_text, speak=cmd.audio)
        else:
            await self.runner.run(handle, cmd.messages, speak=cmd.audio)
        self._settled.add(handle.response_id)
        failures = self._failures.get(handle.response_id, [])
        # An LLM that failed or stalled was replaced by the fallback line (the reply is
        # complete); a stage that lost part of the reply fails the response.
        llm = [f.error for f in failures if f.stage in ("llm", "no_audio")]
        other = [f.error for f in failures if f.stage not in ("llm", "no_audio")]
        marks = dict(handle.turn.marks_ms)
        wire_id = cmd.response_id
        self.emit(
            ResponseFinished(wire_id, marks, error=next(iter(other), ""), llm_error=" / ".join(llm))
        )

    def _failed(self, failure: ResponseFailed) -> None:
        self._failures.setdefault(failure.response_id, []).append(failure)

    def _cleanup(self, handle: ResponseHandle) -> None:
        rid = handle.response_id
        stream = self.outlet.streams.get(rid)
        self.outlet.close(rid)
        failures = self._failures.pop(rid, [])
        if stream is not None:
            self._handles.pop(stream.wire_id, None)
        if rid in self._settled:
            self._settled.discard(rid)
            return
        task = handle.task
        cancelled = handle.interrupted or (task is not None and task.cancelling() > 0)
        if stream is not None and not cancelled:  # an error in earshot itself
            error = next((f.error for f in failures), "internal error")
            self.emit(ResponseFinished(stream.wire_id, dict(handle.turn.marks_ms), error=error))


__all__ = ["SAMPLE_RATE_HZ", "EngineComponents", "ProtocolEngine", "smart_endpointer"]
