"""A budget policy: act when the LLM runs past its line of the per-turn latency budget.

Nobody acts on a latency budget at run time; this does. Given the LLM's share of a per-turn
budget (``line_ms`` from the request to the first token — e.g. the 600 ms LLM line of the
1.5 s pipeline budget of "Latency Budgeting: Speed Goals for Realtime Voice"), when no token
has come by the line the policy fires its actions, in order:

* ``hedge`` — send the request to a faster backend too (the first token of either wins; the
  other is closed), optionally with a shorter-reply instruction;
* ``shorter`` — the extra request asks for a short reply (``SHORTER_INSTRUCTION``), so the
  reply's audio also ends sooner;
* ``filler`` — speak a filler line now, so the caller hears something by the budget; it is a
  `earshot.levers.filler.FillerText`, spoken and cut exactly as the tool lever's filler: the
  reply's first audio stops it at the next word boundary (``extra["filler"]``).

`BudgetPolicy` is the pure rule (fed ``now_ms``); `BudgetGuardLLM` is the `LanguageModel`
shell. Which action fired, and when, is written to the turn record (``extra["budget_actions"]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from earshot.clock import Clock
from earshot.levers.filler import DEFAULT_FADE_MS, DEFAULT_FILLER_LINES, FillerText
from earshot.levers.notes import note
from earshot.llm.base import ChatMessage, LanguageModel, LlmError

BudgetAction = Literal["hedge", "shorter", "filler"]
ACTIONS: tuple[BudgetAction, ...] = ("hedge", "shorter", "filler")

SHORTER_INSTRUCTION = "Answer in one short sentence."
"""Appended as a system message to the request a `shorter` action sends."""


@dataclass(frozen=True, slots=True)
class Fired:
    """An action the policy fired: what, when (session clock) and against which line (ms)."""

    action: BudgetAction
    at_ms: float
    line_ms: float
    late_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "at_ms": round(self.at_ms, 3),
            "line_ms": round(self.line_ms, 3),
            "late_ms": round(self.late_ms, 3),
        }


@dataclass(slots=True)
class BudgetPolicy:
    """Fire ``actions`` once, when ``now_ms`` passes ``request_ms + line_ms`` with no token.

    Raises:
        ValueError: a negative line, or an unknown action.
    """

    line_ms: float
    request_ms: float
    actions: tuple[BudgetAction, ...] = ("hedge",)
    first_token_ms: float | None = None
    fired: list[Fired] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.line_ms < 0:
            raise ValueError(f"the LLM's budget line must be >= 0 ms, got {self.line_ms}")
        unknown = [a for a in self.actions if a not in ACTIONS]
        if unknown:
            raise ValueError(f"unknown budget actions {unknown}; choose from {', '.join(ACTIONS)}")

    @property
    def deadline_ms(self) -> float:
        return self.request_ms + self.line_ms

    def token(self, now_ms: float) -> None:
        """The first token arrived."""
        if self.first_token_ms is None:
            self.first_token_ms = now_ms

    def poll(self, now_ms: float) -> list[Fired]:
        """The actions to take now (each fires at most once per turn)."""
        if self.first_token_ms is not None or self.fired or now_ms < self.deadline_ms:
            return []
        late = now_ms - self.deadline_ms
        self.fired = [Fired(a, now_ms, self.line_ms, late) for a in self.actions]
        return list(self.fired)


@dataclass(frozen=True, slots=True)
class _Delta:
    source: int
    text: str | None  # None: that stream ended


@dataclass(frozen=True, slots=True)
class _Error:
    source: int
    error: str


class BudgetGuardLLM:
    """A `LanguageModel` that enforces the LLM's budget line (see the module docstring).

    Args:
        primary: the backend asked first.
        clock: the session clock.
        line_ms: the LLM's line: request → first token (ms).
        actions: what to do past the line.
        fallback: the faster backend a ``hedge`` sends to (None: the primary again).
        filler_lines: what a ``filler`` says (rotated per turn).
        fade_ms: the fade when the reply's first audio cuts the filler at a word (ms).

    Raises:
        ValueError: a negative line or fade, or an unknown action.
    """

    def __init__(
        self,
        primary: LanguageModel,
        clock: Clock,
        line_ms: float,
        actions: Sequence[BudgetAction] = ("hedge",),
        fallback: LanguageModel | None = None,
        filler_lines: Sequence[str] = DEFAULT_FILLER_LINES,
        fade_ms: float = DEFAULT_FADE_MS,
    ) -> None:
        BudgetPolicy(line_ms, 0.0, tuple(actions))  # validate
        if fade_ms < 0:
            raise ValueError(f"the filler's fade_ms must be >= 0, got {fade_ms}")
        self.primary = primary
        self.fallback = fallback
        self.clock = clock
        self.line_ms = line_ms
        self.actions = tuple(actions)
        self.filler_lines = tuple(filler_lines)
        self.fade_ms = fade_ms
        self.simulated = primary.simulated or (fallback is not None and fallback.simulated)
        self.name = f"budget-guard({primary.name}; line {line_ms:g} ms: {'+'.join(actions)})"
        self._turns = 0

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """The primary's reply, or — past the line — whatever the fired actions produce.

        Raises:
            LlmError: every request failed before a token.
        """
        policy = BudgetPolicy(self.line_ms, self.clock.now_ms(), self.actions)
        filler = self.filler_lines[self._turns % len(self.filler_lines)]
        self._turns += 1
        queue: asyncio.Queue[_Delta | _Error] = asyncio.Queue()
        winner: int | None = None
        errors: list[str] = []
        active = {0}
        async with asyncio.TaskGroup() as tg:
            tasks = {0: tg.create_task(self._pump(0, self.primary, messages, queue))}
            timer = tg.create_task(self._timer(policy.deadline_ms, queue))
            try:
                while active:
                    item = await queue.get()
                    if isinstance(item, _Delta) and item.source == -1:  # the budget line
                        for fired in policy.poll(self.clock.now_ms()):
                            if fired.action == "filler" and winner is None:
                                yield FillerText(filler + " ", "budget", self.fade_ms)
                            elif fired.action == "hedge" and winner is None:
                                extra = [*messages]
                                if "shorter" in self.actions:
                                    extra.append(ChatMessage("system", SHORTER_INSTRUCTION))
                                backend = self.fallback or self.primary
                                tasks[1] = tg.create_task(self._pump(1, backend, extra, queue))
                                active.add(1)
                        note("budget_actions", [f.to_json() for f in policy.fired])
                        continue
                    if item.source not in active:
                        continue  # a cancelled loser's late output
                    if isinstance(item, _Error):
                        errors.append(f"request {item.source}: {item.error}")
                        active.discard(item.source)
                        continue
                    if item.text is None:
                        active.discard(item.source)
                        continue
                    if winner is None:
                        winner = item.source
                        policy.token(self.clock.now_ms())
                        for source, task in tasks.items():
                            if source != winner:
                                task.cancel()
                                active.discard(source)
                        note("budget_winner", winner)
                    yield item.text
            finally:
                timer.cancel()
                for task in tasks.values():
                    task.cancel()
        if winner is None and errors:
            raise LlmError(f"the LLM and its budget fallback failed: {'; '.join(errors)}")

    async def _timer(self, deadline_ms: float, queue: asyncio.Queue[_Delta | _Error]) -> None:
        await self.clock.sleep_until_ms(deadline_ms)
        queue.put_nowait(_Delta(-1, ""))

    async def _pump(
        self,
        source: int,
        llm: LanguageModel,
        messages: Sequence[ChatMessage],
        queue: asyncio.Queue[_Delta | _Error],
    ) -> None:
        stream = llm.stream(messages)
        try:
            async for delta in stream:
                if delta:
                    queue.put_nowait(_Delta(source, delta))
            queue.put_nowait(_Delta(source, None))
        except Exception as exc:  # a failed request is one lost source, never the call
            queue.put_nowait(_Error(source, f"{type(exc).__name__}: {exc}"))
        finally:
            await stream.aclose()
