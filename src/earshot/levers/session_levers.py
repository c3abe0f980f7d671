"""The levers that act inside the session loop: the response cache and preemptive generation.

`SessionLevers` is handed to `earshot.session.session.Session` (``levers=``); the session
calls its hooks (turn started, partial transcript, speech paused/resumed, every frame, end of
turn, reply completed) and it drives the pure policies (`earshot.levers.cache`,
`earshot.levers.preemptive`) and acts through the session's own machinery: handles, the
scheduler, the jitter buffer, `ResponseHandle.interrupt`.

**Response cache.** At end-of-turn the latest partial transcript is looked up; on a hit the
cached audio goes into the jitter buffer at once, so the caller waits for end-of-turn and the
buffer's hold only (the STT final, LLM and TTS are off the critical path: their marks are set
to the moment of the hit, so those terms read 0, and the real final time is kept in
``extra["cache"]["stt_final_ms"]``). When the final transcript arrives it must key the same
entry; if not, the cached reply is interrupted and counted as retracted, and the turn is
answered normally. Replies are stored when they complete unheard-of trouble: not interrupted,
not failed, not marked ``extra["uncacheable"]`` (a live-data tool sets it) and passing the
``cacheable`` predicate.

**Preemptive generation.** A speculative response runs on the stable partial with its audio
held in `HoldingBuffer` (nothing speculative is ever heard). On a matching final it becomes the
turn's reply: its marks move into the turn, those before ``stt_final`` are clamped to it
(`clamp_marks`: the term is what the caller still waited for) and the saving is recorded in
``extra["preemptive"]``; otherwise it is interrupted and its text counted as waste.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.levers.cache import CacheCounters, CachedReply, ResponseCache
from earshot.levers.normalize import normalize_transcript
from earshot.levers.notes import bind_turn_notes
from earshot.levers.preemptive import (
    CancelSpeculation,
    CommitSpeculation,
    PreemptiveAction,
    PreemptiveConfig,
    PreemptivePolicy,
    StartSpeculation,
    clamp_marks,
)
from earshot.levers.tools import ToolRegistry
from earshot.llm.base import ChatMessage
from earshot.metrics.turn import MARKS, TurnRecord
from earshot.playout.jitter import JitterBuffer, truncate_chunks
from earshot.session.response import ResponseHandle
from earshot.stt.base import Transcript

if TYPE_CHECKING:
    from earshot.clock import Clock
    from earshot.session.listener import Listener
    from earshot.session.response import ResponseRunner

_AFTER_FINAL = (
    "llm_request",
    "llm_first_token",
    "first_sentence",
    "tts_first_audio",
    "playout_queued",
)


@dataclass(slots=True)
class _Held:
    chunks: list[tuple[Pcm16, float]] = field(default_factory=list)
    ended: bool = False


class HoldingBuffer:
    """The session's audio sink: the jitter buffer, except for responses being held back.

    A held response's audio is kept here (and not opened in the jitter buffer) until
    `release`, which opens it, pushes what was held (timed at the release) and forwards
    everything after. With ``record`` on, every response's audio is also copied (for the
    response cache) until `take_recording`.
    """

    def __init__(self, jitter: JitterBuffer) -> None:
        self.jitter = jitter
        self.record = False
        self._held: dict[int, _Held] = {}
        self._recorded: dict[int, list[Pcm16]] = {}

    def hold(self, response_id: int) -> None:
        self._held[response_id] = _Held()

    def held(self, response_id: int) -> bool:
        return response_id in self._held

    def push(self, response_id: int, audio: Pcm16, now_ms: float) -> bool:
        if audio.size == 0:
            return False
        if self.record:
            self._recorded.setdefault(response_id, []).append(audio)
        held = self._held.get(response_id)
        if held is not None:
            held.chunks.append((audio, now_ms))
            return True
        return self.jitter.push(response_id, audio, now_ms)

    def end(self, response_id: int) -> None:
        held = self._held.get(response_id)
        if held is not None:
            held.ended = True
        else:
            self.jitter.end(response_id)

    def buffered_ms_of(self, response_id: int) -> float:
        held = self._held.get(response_id)
        if held is None:
            return self.jitter.buffered_ms_of(response_id)
        return sum(len(a) for a, _ in held.chunks) / 16.0

    def played_samples(self, response_id: int) -> int:
        """Samples of the response that have left toward the caller (0 while held)."""
        return 0 if response_id in self._held else self.jitter.played_samples(response_id)

    def cut(self, response_id: int, at_sample: int, fade_samples: int = 0) -> int:
        """`JitterBuffer.cut`, on the held audio while the response is held."""
        held = self._held.get(response_id)
        if held is None:
            return self.jitter.cut(response_id, at_sample, fade_samples)
        total = sum(len(a) for a, _ in held.chunks)
        end = min(max(0, at_sample), total)
        kept = truncate_chunks([a for a, _ in held.chunks], end, min(fade_samples, end))
        at_ms = held.chunks[0][1] if held.chunks else 0.0
        held.chunks = [(a, at_ms) for a in kept]
        return end

    def release(self, response_id: int, now_ms: float) -> None:
        """Open the response in the jitter buffer and hand it everything held."""
        held = self._held.pop(response_id)
        self.jitter.open(response_id)
        for audio, _ in held.chunks:
            self.jitter.push(response_id, audio, now_ms)
        if held.ended:
            self.jitter.end(response_id)

    def drop(self, response_id: int) -> None:
        """Forget a held (cancelled) response and any recording of it."""
        self._held.pop(response_id, None)
        self._recorded.pop(response_id, None)

    def take_recording(self, response_id: int) -> Pcm16:
        """All audio pushed for the response (int16 16 kHz), forgotten here."""
        chunks = self._recorded.pop(response_id, [])
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


class LeverHost(Protocol):
    """What `SessionLevers` needs of the session it acts in (`earshot.session.Session` is one).

    The levers act through the session's own machinery — its clock, its audio sink, its
    response runner and task group — and never reach into it further than this.
    """

    clock: Clock
    holding: HoldingBuffer
    jitter: JitterBuffer
    listener: Listener
    runner: ResponseRunner

    @property
    def history(self) -> list[ChatMessage]: ...
    @property
    def running(self) -> bool: ...
    @property
    def replying(self) -> bool: ...
    def new_response_id(self) -> int: ...
    def new_handle(self, turn: TurnRecord, heard_prefix: str = "") -> ResponseHandle: ...
    def start_untracked(
        self,
        handle: ResponseHandle,
        work: Coroutine[Any, Any, None],
        cleanup: Callable[[ResponseHandle], None],
    ) -> None: ...
    def is_tracked(self, response_id: int) -> bool: ...
    def untrack(self, response_id: int) -> None: ...
    def track(self, handle: ResponseHandle) -> None: ...
    def drop(self, handle: ResponseHandle) -> None: ...
    def clear_audio(self, handle: ResponseHandle) -> int: ...
    async def final_text(self, turn: TurnRecord, final: asyncio.Future[Transcript]) -> str: ...
    def takes_turn(self, handle: ResponseHandle, text: str, during_agent: bool) -> bool: ...
    async def respond_to(self, handle: ResponseHandle, text: str, during_agent: bool) -> None: ...
    def answer(self, handle: ResponseHandle, text: str) -> None: ...
    def text_out(self, handle: ResponseHandle, text: str) -> None: ...


@dataclass(slots=True)
class _Speculation:
    handle: ResponseHandle
    text: str
    started_ms: float


class PreemptiveCounters(TypedDict):
    """A run's preemptive generation: speculations started, committed (their final matched),
    restarted, and what the cancelled ones had produced (words synthesized, LLM tokens)."""

    speculations: int
    committed: int
    restarts: int
    discarded_words: int
    discarded_tokens: int


class LeverSummary(TypedDict, total=False):
    """`SessionLevers.summary`: the run totals of the levers that were on."""

    cache: CacheCounters
    preemptive: PreemptiveCounters


@dataclass(slots=True)
class SessionLevers:
    """Levers inside the loop (see the module docstring).

    Args:
        cache: the response cache; None turns it off.
        preemptive: speculation settings; None turns preemptive generation off.
        cacheable: extra predicate on (user text, reply text): False never stores the reply.
        tools: a tool registry whose predictable calls are prefetched when the session starts.
    """

    cache: ResponseCache | None = None
    preemptive: PreemptiveConfig | None = None
    cacheable: Callable[[str, str], bool] | None = None
    tools: ToolRegistry | None = None
    speculations: int = 0
    committed: int = 0
    cancelled_words: int = 0
    cancelled_tokens: int = 0
    _session: LeverHost | None = None
    _policy: PreemptivePolicy | None = None
    _spec: _Speculation | None = None
    _partial: str = ""

    def attach(self, session: LeverHost) -> None:
        """Called by the session it is given to."""
        self._session = session
        if self.preemptive is not None:
            self._policy = PreemptivePolicy(self.preemptive)
        if self.cache is not None:
            session.holding.record = True

    @property
    def session(self) -> LeverHost:
        if self._session is None:
            raise RuntimeError("SessionLevers must be given to a Session (levers=...)")
        return self._session

    def summary(self) -> LeverSummary:
        """Run totals for a report (only the levers that are on)."""
        out: LeverSummary = {}
        if self.cache is not None:
            out["cache"] = self.cache.stats.to_json()
        if self.preemptive is not None:
            out["preemptive"] = {
                "speculations": self.speculations,
                "committed": self.committed,
                "restarts": self.speculations - self.committed,
                "discarded_words": self.cancelled_words,
                "discarded_tokens": self.cancelled_tokens,
            }
        return out

    # -- hooks the session calls ---------------------------------------------------------

    async def session_started(self) -> None:
        """Prefetch the predictable tool calls (a task of the session's TaskGroup)."""
        if self.tools is not None:
            await self.tools.prefetch(self.session.clock)

    def turn_started(self, now_ms: float) -> None:
        self._partial = ""
        if self._policy is not None:
            self._act(self._policy.turn_started(now_ms))

    def partial(self, text: str, now_ms: float) -> None:
        self._partial = text
        if self._policy is not None:
            self._act(self._policy.partial(text, now_ms))

    def speech_paused(self, end_ms: float) -> None:
        if self._policy is not None:
            self._policy.speech_paused(end_ms)

    def speech_resumed(self, now_ms: float) -> None:
        if self._policy is not None:
            self._policy.speech_resumed(now_ms)

    def poll(self, now_ms: float) -> None:
        if self._policy is not None and self.session.listener.in_turn:
            self._act(self._policy.poll(now_ms))

    async def respond(
        self, handle: ResponseHandle, final: asyncio.Future[Transcript], during_agent: bool
    ) -> None:
        """The turn's response work, in place of `Session._respond`."""
        s = self.session
        hit = self._lookup(handle, during_agent)
        text = await s.final_text(handle.turn, final)
        if hit is not None:
            if self._confirm_hit(handle, hit, text, during_agent):
                return
            handle = self._retract(handle)
        if self._policy is not None:
            actions = self._policy.final(text, s.clock.now_ms())
            self._act(actions)
            committed = any(isinstance(a, CommitSpeculation) for a in actions)
            if committed and self._adopt(handle, text, during_agent):
                return
        await s.respond_to(handle, text, during_agent)

    def completed(self, handle: ResponseHandle) -> None:
        """A reply finished playing: store it in the cache if it may be."""
        s = self.session
        audio = s.holding.take_recording(handle.response_id)
        if self.cache is None:
            return
        turn = handle.turn
        cacheable = not (
            handle.interrupted
            or any(
                k in turn.extra for k in ("llm_error", "tts_error", "stt_error", "response_error")
            )
            or turn.extra.get("uncacheable")
            or turn.extra.get("fallback")
            or (turn.extra.get("cache") or {}).get("hit")
        )
        if cacheable and self.cacheable is not None:
            cacheable = self.cacheable(turn.user_text, handle.generated_text)
        self.cache.store(
            turn.user_text,
            handle.generated_text.strip(),
            audio,
            tuple(handle.words),
            s.clock.now_ms(),
            cacheable=cacheable,
        )

    # -- the response cache --------------------------------------------------------------

    def _lookup(self, handle: ResponseHandle, during_agent: bool) -> CachedReply | None:
        s = self.session
        if self.cache is None or during_agent or s.listener.bargein_pending:
            return None
        hit = self.cache.lookup(self._partial, s.clock.now_ms())
        if hit is None:
            handle.turn.extra["cache"] = {"hit": False}
            return None
        now_ms = s.clock.now_ms()
        turn = handle.turn
        for name in ("stt_final", *_AFTER_FINAL):
            turn.marks_ms[name] = now_ms
        handle.generated_text = hit.text
        handle.words = list(hit.words)
        handle.synthesized_samples = len(hit.audio)
        s.jitter.push(handle.response_id, hit.audio, now_ms)
        s.jitter.end(handle.response_id)
        turn.extra["cache"] = {"hit": True, "key": self.cache.key(self._partial)}
        return hit

    def _confirm_hit(
        self, handle: ResponseHandle, hit: CachedReply, text: str, during_agent: bool
    ) -> bool:
        s = self.session
        turn = handle.turn
        assert self.cache is not None
        final_ms = turn.marks_ms["stt_final"]
        turn.marks_ms["stt_final"] = turn.marks_ms["llm_request"]  # the caller did not wait
        turn.extra["cache"]["stt_final_ms"] = round(final_ms, 3)
        if handle.interrupted:
            return True  # a barge-in stopped the cached reply; the conversation has it
        if self.cache.key(text) != self.cache.key(self._partial):
            return False
        if not s.takes_turn(handle, text, during_agent):
            return True
        s.answer(handle, text)
        s.text_out(handle, hit.text)
        return True

    def _retract(self, handle: ResponseHandle) -> ResponseHandle:
        """The final disagreed with the cached lookup: stop the cached reply, answer anew."""
        s = self.session
        assert self.cache is not None
        self.cache.retract()
        handle.task = None  # this very task goes on to answer: interrupt only clears the audio
        handle.interrupt()
        s.untrack(handle.response_id)
        turn = handle.turn
        final_ms = turn.extra["cache"]["stt_final_ms"]
        for name in (*_AFTER_FINAL, "playout_start"):
            turn.marks_ms.pop(name, None)
        turn.marks_ms["stt_final"] = final_ms
        turn.extra["cache"]["retracted"] = True
        fresh = s.new_handle(turn)
        fresh.task = asyncio.current_task()  # the work goes on in this task: interrupt cancels it
        return fresh

    # -- preemptive generation -----------------------------------------------------------

    def _act(self, actions: list[PreemptiveAction]) -> None:
        for action in actions:
            match action:
                case StartSpeculation():
                    self._speculate(action)
                case CancelSpeculation():
                    self._cancel_speculation()
                case CommitSpeculation():
                    pass  # `respond` adopts it

    def _speculate(self, start: StartSpeculation) -> None:
        s = self.session
        if not s.running or s.replying or self._spec is not None:
            return  # a reply is pending or playing: speculating now would talk over it
        turn = TurnRecord(turn=0)
        handle = ResponseHandle(s.new_response_id(), turn)
        handle.on_interrupt = self._clear_speculation
        s.holding.hold(handle.response_id)
        text = self._partial
        messages = [*s.history, ChatMessage("user", text)]
        self._spec = _Speculation(handle, text, start.at_ms)
        self.speculations += 1

        async def work() -> None:
            with bind_turn_notes(turn.extra, turn.marks_ms):
                await s.runner.run(handle, messages)

        s.start_untracked(handle, work(), cleanup=lambda h: s.holding.end(h.response_id))

    def _clear_speculation(self, handle: ResponseHandle) -> int:
        s = self.session
        if s.holding.held(handle.response_id):
            s.holding.drop(handle.response_id)
        else:
            s.clear_audio(handle)
        return 0

    def _cancel_speculation(self) -> None:
        spec, self._spec = self._spec, None
        if spec is None:
            return
        self._discard(spec)

    def _discard(self, spec: _Speculation) -> None:
        """Stop a speculation that will not be heard, counting what it generated as waste."""
        self.cancelled_words += len(spec.handle.generated_text.split())
        self.cancelled_tokens += spec.handle.llm_deltas
        spec.handle.interrupt()

    def _adopt(self, handle: ResponseHandle, text: str, during_agent: bool) -> bool:
        """Make the committed speculation this turn's reply; False if it cannot be."""
        s = self.session
        spec, self._spec = self._spec, None
        if spec is None:
            return False
        if spec.handle.interrupted or not s.takes_turn(handle, text, during_agent):
            self._discard(spec)
            return not s.is_tracked(handle.response_id)  # dropped: nothing more to do
        s.drop(handle)  # the end-of-turn handle is not needed
        turn = handle.turn
        spec_turn = spec.handle.turn
        for name in _AFTER_FINAL:
            if name in spec_turn.marks_ms:
                turn.marks_ms[name] = spec_turn.marks_ms[name]
        for key, value in spec_turn.extra.items():
            turn.extra.setdefault(key, value)
        spec.handle.turn = turn
        s.answer(spec.handle, text)
        moved = clamp_marks(turn.marks_ms, MARKS, "stt_final")
        now_ms = s.clock.now_ms()
        s.track(spec.handle)
        s.holding.release(spec.handle.response_id, now_ms)
        if spec.handle.generated_text:
            s.text_out(spec.handle, spec.handle.generated_text)
        spec_turn_ttft = (
            spec_turn.marks_ms["llm_first_token"] - spec_turn.marks_ms["llm_request"]
            if "llm_first_token" in spec_turn.marks_ms
            else None
        )
        turn.extra["preemptive"] = {
            "speculated_on": normalize_transcript(spec.text),
            "started_ms": round(spec.started_ms, 3),
            "lead_ms": round(turn.marks_ms["stt_final"] - spec.started_ms, 3),
            "llm_ttft_ms": None if spec_turn_ttft is None else round(spec_turn_ttft, 3),
            "saved_ms": {k: round(v, 3) for k, v in moved.items()},
            "speculations": self._policy.started if self._policy is not None else 1,
        }
        self.committed += 1
        return True
