"""LLM hedging: race N requests for the first token; the losers are cancelled at once.

The "hedged request" of Dean & Barroso, *The Tail at Scale* (CACM 56(2), 2013): send the same
request to more than one replica and use whichever answers first. For a streamed LLM the answer
that matters is the first token (T. Pan, "Voice AI in Production": two parallel calls, use
whichever returns a first token first — it cuts the P99, not the average). Two shapes:

* **immediate** (``delay_ms=0``): all N requests go out together; N× the load.
* **delayed** (``delay_ms>0`` or ``percentile``): request k+1 goes out only if no request has
  produced a token ``delay`` ms after request k; Dean & Barroso defer the hedge "until the first
  request has been outstanding for more than the 95th-percentile expected latency", which adds
  about 5 % load. With ``percentile`` the delay is that percentile of this backend's TTFT
  measured so far (`TtftHistory`), falling back to ``delay_ms`` until enough are measured.

`HedgeRace` is the pure policy (fed events and ``now_ms``, returns `Launch`/`Cancel`/`Win`/
`GiveUp` actions); `HedgedLLM` is a `LanguageModel` wrapper that executes it, so a session
needs no change. A request that fails before its first token does not end the race: the next
request is launched at once (fail-over). What happened goes into the turn record under
``extra["llm_hedge"]`` (see `earshot.levers.notes`).

TTFT observations are censored: a request cancelled as a loser is never observed, so the
measured percentile is biased low while hedging is on (the hedge then fires a little early).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from earshot.clock import Clock
from earshot.levers.notes import note
from earshot.llm.base import ChatMessage, LanguageModel, LlmError


@dataclass(frozen=True, slots=True)
class HedgeConfig:
    """How to hedge.

    Args:
        num_requests: at most this many requests per turn (1 disables hedging).
        delay_ms: wait before each further request while none has a token (0: send all at
            once); also the delay used until ``percentile`` has ``min_history`` observations.
        percentile: if set (0–100), the delay is this percentile of the backend's measured TTFT
            (Dean & Barroso use the 95th).
        min_history: TTFTs to measure before ``percentile`` is trusted.

    Raises:
        ValueError: on a count below 1, a negative delay or a percentile outside (0, 100).
    """

    num_requests: int = 2
    delay_ms: float = 0.0
    percentile: float | None = None
    min_history: int = 10

    def __post_init__(self) -> None:
        if self.num_requests < 1:
            raise ValueError(f"hedging needs num_requests >= 1, got {self.num_requests}")
        if not self.delay_ms >= 0:
            raise ValueError(f"hedge delay must be >= 0 ms, got {self.delay_ms}")
        if self.percentile is not None and not 0 < self.percentile < 100:
            raise ValueError(f"hedge percentile must lie in (0, 100), got {self.percentile}")
        if self.min_history < 1:
            raise ValueError(f"min_history must be >= 1, got {self.min_history}")


class TtftHistory:
    """The last ``size`` measured TTFTs (ms) per backend name."""

    def __init__(self, size: int = 200) -> None:
        if size < 1:
            raise ValueError(f"TTFT history size must be >= 1, got {size}")
        self._size = size
        self._by_backend: dict[str, deque[float]] = {}

    def observe(self, backend: str, ttft_ms: float) -> None:
        self._by_backend.setdefault(backend, deque(maxlen=self._size)).append(ttft_ms)

    def count(self, backend: str) -> int:
        return len(self._by_backend.get(backend, ()))

    def percentile(self, backend: str, q: float) -> float | None:
        """The q-th percentile (0–100, linear interpolation) of ``backend``'s TTFTs, or None."""
        values = sorted(self._by_backend.get(backend, ()))
        if not values:
            return None
        pos = (len(values) - 1) * q / 100.0
        lo, hi = math.floor(pos), math.ceil(pos)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def hedge_delay_ms(config: HedgeConfig, history: TtftHistory, backend: str) -> float:
    """The delay before the next request: the measured percentile, else ``delay_ms``."""
    if config.percentile is not None and history.count(backend) >= config.min_history:
        measured = history.percentile(backend, config.percentile)
        if measured is not None:
            return measured
    return config.delay_ms


# -- the pure race ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Launch:
    """Send request ``index`` to backend ``backend`` (an index into the backend list)."""

    index: int
    backend: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel request ``index`` and close its stream."""

    index: int


@dataclass(frozen=True, slots=True)
class Win:
    """Request ``index`` produced the first usable token; stream its reply."""

    index: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Every request failed before a token; ``errors`` says why, per request."""

    errors: tuple[str, ...]
    all_empty: bool


HedgeAction = Launch | Cancel | Win | GiveUp


@dataclass(slots=True)
class _Request:
    backend: int
    launched_ms: float
    state: str = "live"  # live | won | lost | failed
    first_token_ms: float | None = None
    error: str = ""
    empty: bool = False


@dataclass(frozen=True, slots=True)
class HedgeOutcome:
    """What one race did (ms on the session clock, offsets from the race start)."""

    requests_sent: int
    winner: int | None
    winner_backend: int | None
    winner_ttft_ms: float | None
    launch_offsets_ms: tuple[float, ...]
    cancelled: int
    errors: tuple[str, ...]
    delay_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_sent": self.requests_sent,
            "winner": self.winner,
            "winner_backend": self.winner_backend,
            "winner_ttft_ms": None
            if self.winner_ttft_ms is None
            else round(self.winner_ttft_ms, 3),
            "launch_offsets_ms": [round(t, 3) for t in self.launch_offsets_ms],
            "cancelled": self.cancelled,
            "errors": list(self.errors),
            "delay_ms": round(self.delay_ms, 3),
        }


@dataclass(slots=True)
class HedgeRace:
    """The hedging policy for one turn, driven by events and ``now_ms``.

    Request k goes to backend ``k % num_backends`` at ``start_ms + k × delay_ms``, unless a
    token arrives first; a failure launches the next request at once. The first token wins:
    every other live request is cancelled and nothing more is launched.

    Args:
        num_requests: the most requests to send.
        num_backends: how many backends to spread them over.
        delay_ms: the hedge delay (0: all at once).
        start_ms: when the turn's LLM request was made.
    """

    num_requests: int
    num_backends: int
    delay_ms: float
    start_ms: float
    _requests: list[_Request] = field(default_factory=list)
    winner: int | None = None
    finished: bool = False

    def start(self) -> list[HedgeAction]:
        """The first request (and, with no delay, all of them)."""
        return self.poll(self.start_ms)

    @property
    def next_launch_ms(self) -> float | None:
        """When the next request is due, or None if none is (won, finished, all sent)."""
        if self.finished or len(self._requests) >= self.num_requests:
            return None
        return self.start_ms + len(self._requests) * self.delay_ms

    def poll(self, now_ms: float) -> list[HedgeAction]:
        """Launch every request that is due at ``now_ms``."""
        actions: list[HedgeAction] = []
        while (due := self.next_launch_ms) is not None and due <= now_ms:
            actions.append(self._launch(now_ms))
        return actions

    def first_token(self, index: int, now_ms: float) -> list[HedgeAction]:
        """Request ``index`` yielded its first non-empty delta at ``now_ms``."""
        request = self._requests[index]
        request.first_token_ms = now_ms
        if self.winner is not None or self.finished:
            request.state = "lost"
            return [Cancel(index)]
        self.winner = index
        self.finished = True
        request.state = "won"
        actions: list[HedgeAction] = [Win(index)]
        for i, other in enumerate(self._requests):
            if other.state == "live":
                other.state = "lost"
                actions.append(Cancel(i))
        return actions

    def failed(
        self, index: int, now_ms: float, error: str, *, empty: bool = False
    ) -> list[HedgeAction]:
        """Request ``index`` failed (or ended without any token: ``empty``) before a token."""
        request = self._requests[index]
        request.state, request.error, request.empty = "failed", error, empty
        if self.finished:
            return []
        if len(self._requests) < self.num_requests:
            return [self._launch(now_ms)]  # fail over at once
        if any(r.state == "live" for r in self._requests):
            return []
        self.finished = True
        return [GiveUp(self.errors(), all(r.empty for r in self._requests))]

    def errors(self) -> tuple[str, ...]:
        return tuple(f"request {i}: {r.error}" for i, r in enumerate(self._requests) if r.error)

    def outcome(self) -> HedgeOutcome:
        won = self._requests[self.winner] if self.winner is not None else None
        ttft = (
            None
            if won is None or won.first_token_ms is None
            else won.first_token_ms - won.launched_ms
        )
        return HedgeOutcome(
            requests_sent=len(self._requests),
            winner=self.winner,
            winner_backend=None if won is None else won.backend,
            winner_ttft_ms=ttft,
            launch_offsets_ms=tuple(r.launched_ms - self.start_ms for r in self._requests),
            cancelled=sum(1 for r in self._requests if r.state == "lost"),
            errors=self.errors(),
            delay_ms=self.delay_ms,
        )

    def ttft_of(self, index: int) -> float | None:
        request = self._requests[index]
        if request.first_token_ms is None:
            return None
        return request.first_token_ms - request.launched_ms

    def backend_of(self, index: int) -> int:
        return self._requests[index].backend

    def _launch(self, now_ms: float) -> Launch:
        index = len(self._requests)
        backend = index % self.num_backends
        self._requests.append(_Request(backend, now_ms))
        return Launch(index, backend)


# -- the async shell -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FirstToken:
    index: int
    text: str
    stream: AsyncGenerator[str, None]


@dataclass(frozen=True, slots=True)
class _Failed:
    index: int
    error: str
    empty: bool = False


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


_RaceEvent = _FirstToken | _Failed | _Tick


class HedgedLLM:
    """A `LanguageModel` that races requests to one or more backends (see module docstring).

    Args:
        backends: the models to race; request k goes to ``backends[k % len(backends)]``. One
            backend hedges against itself (independent requests to the same server).
        clock: the session clock (hedge timers run on it).
        config: how many requests and when.
        history: shared TTFT history (keyed by backend name); a new one if None.

    Raises:
        ValueError: no backends.
    """

    def __init__(
        self,
        backends: Sequence[LanguageModel],
        clock: Clock,
        config: HedgeConfig | None = None,
        history: TtftHistory | None = None,
    ) -> None:
        if not backends:
            raise ValueError("HedgedLLM needs at least one backend")
        self.backends = list(backends)
        self.clock = clock
        self.config = config or HedgeConfig()
        self.history = history or TtftHistory()
        self.simulated = any(b.simulated for b in self.backends)
        names = ", ".join(b.name for b in self.backends)
        self.name = f"hedged(N={self.config.num_requests}; {names})"
        self.outcomes: list[HedgeOutcome] = []
        """Every race so far, in order (also written into each turn's record)."""

    def delay_ms(self) -> float:
        """The hedge delay the next race will use (ms)."""
        return hedge_delay_ms(self.config, self.history, self.backends[0].name)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yield the winning request's reply; the other requests are cancelled on its first token.

        Raises:
            LlmError: every request failed before a token (the message lists each error), or
                the winner's stream failed after its first token (no fail-over then: its text
                has been spoken).
        """
        race = HedgeRace(
            self.config.num_requests, len(self.backends), self.delay_ms(), self.clock.now_ms()
        )
        events: asyncio.Queue[_RaceEvent] = asyncio.Queue()
        winner: _FirstToken | None = None
        give_up: GiveUp | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tasks: dict[int, asyncio.Task[None]] = {}
                timers: list[asyncio.Task[None]] = []
                actions = race.start()
                while True:
                    for action in actions:
                        match action:
                            case Launch(index=i, backend=b):
                                tasks[i] = tg.create_task(
                                    self._request(i, self.backends[b], messages, events)
                                )
                                due = race.next_launch_ms
                                if due is not None:
                                    timers.append(tg.create_task(self._timer(due, events)))
                            case Cancel(index=i):
                                tasks[i].cancel()
                            case GiveUp():
                                give_up = action
                            case Win():
                                pass
                    if race.finished:
                        break
                    event = await events.get()
                    now_ms = self.clock.now_ms()
                    match event:
                        case _Tick():
                            actions = race.poll(now_ms)
                        case _FirstToken(index=i):
                            if race.winner is None:
                                winner = event
                            else:
                                await event.stream.aclose()
                            actions = race.first_token(i, now_ms)
                        case _Failed(index=i, error=error, empty=empty):
                            actions = race.failed(i, now_ms, error, empty=empty)
                for timer in timers:
                    timer.cancel()
        finally:
            # A request that won the queue after the race ended hands over an open stream.
            while not events.empty():
                late = events.get_nowait()
                if isinstance(late, _FirstToken) and late is not winner:
                    await late.stream.aclose()
        outcome = race.outcome()
        self.outcomes.append(outcome)
        note("llm_hedge", outcome.to_json())
        for i in range(outcome.requests_sent):
            ttft = race.ttft_of(i)
            if ttft is not None:
                self.history.observe(self.backends[race.backend_of(i)].name, ttft)
        if winner is None:
            if give_up is not None and give_up.all_empty:
                return
            errors = "; ".join(give_up.errors if give_up else ())
            raise LlmError(f"all {outcome.requests_sent} hedged LLM requests failed: {errors}")
        try:
            yield winner.text
            while (delta := await anext(winner.stream, None)) is not None:
                yield delta
        finally:
            await winner.stream.aclose()

    async def _timer(self, due_ms: float, events: asyncio.Queue[_RaceEvent]) -> None:
        await self.clock.sleep_until_ms(due_ms)
        events.put_nowait(_Tick())

    async def _request(
        self,
        index: int,
        backend: LanguageModel,
        messages: Sequence[ChatMessage],
        events: asyncio.Queue[_RaceEvent],
    ) -> None:
        """Stream until the first non-empty delta, then hand the open stream over."""
        stream = backend.stream(messages)
        handed_over = False
        try:
            while True:
                delta = await anext(stream, None)
                if delta is None:
                    events.put_nowait(_Failed(index, "the reply ended without a token", True))
                    return
                if delta:
                    events.put_nowait(_FirstToken(index, delta, stream))
                    handed_over = True
                    return
        except Exception as exc:  # a broken backend loses the race; it never ends the call
            events.put_nowait(_Failed(index, f"{type(exc).__name__}: {exc}"))
        finally:
            if not handed_over:
                await stream.aclose()

    async def aclose(self) -> None:
        """Close every backend that holds connections."""
        for backend in self.backends:
            closer = getattr(backend, "aclose", None)
            if closer is not None:
                await closer()
