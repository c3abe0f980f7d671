"""Tool calls with latency masking: OpenAI-style function calling, fillers, prefetch.

Tools are async Python callables registered with a `ToolRegistry` (name, description, JSON
schema of the arguments). `ToolUsingLLM` wraps a model that can call tools (`ToolCallingModel`:
`earshot.levers.openai_tools.OpenAIToolLLM`, or `earshot.llm.scripted.ScriptedLLM` with
``tool:`` rules) and is itself a plain `LanguageModel`, so the session needs no change:

1. the model streams text, or asks for tool calls;
2. the calls run concurrently; if they have not all answered ``FillerConfig.threshold_ms``
   after they started (`earshot.levers.filler.FillerSchedule`), a filler line is yielded (a
   `earshot.levers.filler.FillerText`) and spoken while the tool runs; when the answer's
   first audio is ready the response runner stops the filler at the next word boundary with
   a ``FillerConfig.fade_ms`` fade, and the answer follows at once;
3. the results go back to the model as ``tool`` messages and its answer streams on.

Calls declared ``predictable`` (with fixed arguments) are run once when the session starts
(`ToolRegistry.prefetch`, T. Pan's "fire predictable ones at call start"); a later call with
the same arguments is served from that result at once. A tool declared ``live_data`` marks the
turn uncacheable for the response cache. The time a tool ran before the first token is its own
term (``tool_start``/``tool_end`` marks → `earshot.metrics.turn.TOOL_TERM`); what each call did
is in ``extra["tools"]``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from earshot.clock import Clock
from earshot.levers.filler import FillerConfig, FillerSchedule, FillerText
from earshot.levers.notes import mark, note
from earshot.llm.base import ChatMessage, LanguageModel, ToolCall

ToolFunc = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One callable the model may use.

    Args:
        name: the function name the model calls (``[a-zA-Z0-9_-]``, as OpenAI requires).
        description: what it does, for the model.
        parameters: JSON schema of its keyword arguments.
        func: ``async def func(**arguments) -> result``; the result is sent back as text
            (a str as is, anything else as JSON).
        predictable: call it once at session start with ``prefetch_arguments``.
        prefetch_arguments: the arguments of that call.
        live_data: its result depends on live data: a reply using it is never cached.
    """

    name: str
    description: str
    func: ToolFunc
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    predictable: bool = False
    prefetch_arguments: Mapping[str, Any] = field(default_factory=dict)
    live_data: bool = False

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one call returned (or why it failed), with its timing on the session clock."""

    call: ToolCall
    content: str
    started_ms: float
    ended_ms: float
    error: str = ""
    prefetched: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.call.name,
            "arguments": self.call.arguments,
            "ms": round(self.ended_ms - self.started_ms, 3),
            "prefetched": self.prefetched,
            "error": self.error or None,
        }


def _canonical(arguments: Mapping[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


class ToolRegistry:
    """The tools of one agent, and the results prefetched for its predictable calls."""

    def __init__(self, tools: Sequence[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._prefetched: dict[tuple[str, str], asyncio.Future[str]] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        """Add a tool.

        Raises:
            ValueError: a tool of that name is already registered, or the name is not one
                OpenAI accepts.
        """
        if not tool.name or not all(c.isalnum() or c in "_-" for c in tool.name):
            raise ValueError(f"tool name {tool.name!r}: use letters, digits, '_' and '-'")
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def tool(self, description: str, **options: Any) -> Callable[[ToolFunc], ToolFunc]:
        """Decorator: ``@registry.tool("Tell the time")`` registers an async function by name."""

        def wrap(func: ToolFunc) -> ToolFunc:
            self.register(Tool(func.__name__, description, func, **options))
            return func

        return wrap

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self) -> list[dict[str, Any]]:
        """Every tool's OpenAI ``tools`` entry."""
        return [t.spec() for t in self._tools.values()]

    async def prefetch(self, clock: Clock) -> int:
        """Run every predictable tool once (concurrently); returns how many were started."""
        predictable = [t for t in self._tools.values() if t.predictable]
        loop = asyncio.get_running_loop()
        for tool in predictable:
            key = (tool.name, _canonical(tool.prefetch_arguments))
            self._prefetched.setdefault(key, loop.create_future())
        async with asyncio.TaskGroup() as tg:
            for tool in predictable:
                tg.create_task(self._prefetch_one(tool))
        return len(predictable)

    async def _prefetch_one(self, tool: Tool) -> None:
        future = self._prefetched[(tool.name, _canonical(tool.prefetch_arguments))]
        try:
            content = _as_text(await tool.func(**tool.prefetch_arguments))
        except Exception as exc:  # a failed prefetch is simply not used
            future.set_exception(exc)
            future.exception()  # retrieved: a later call runs the tool itself
            return
        future.set_result(content)

    async def call(self, call: ToolCall, clock: Clock) -> ToolResult:
        """Run one call (or take its prefetched result). Never raises but cancellation: an
        unknown tool, bad arguments or a failing tool become a result with ``error``."""
        started = clock.now_ms()
        tool = self._tools.get(call.name)
        if tool is None:
            return _failed(call, started, clock, f"no tool named {call.name!r}")
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            return _failed(call, started, clock, f"bad arguments {call.arguments!r}: {exc}")
        future = self._prefetched.get((tool.name, _canonical(arguments)))
        if future is not None:
            try:
                content = await asyncio.shield(future)
                return ToolResult(call, content, started, clock.now_ms(), prefetched=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                pass  # the prefetch failed: run it now
        try:
            content = _as_text(await tool.func(**arguments))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return _failed(call, started, clock, f"{type(exc).__name__}: {exc}")
        return ToolResult(call, content, started, clock.now_ms())


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _failed(call: ToolCall, started_ms: float, clock: Clock, error: str) -> ToolResult:
    content = json.dumps({"error": error})
    return ToolResult(call, content, started_ms, clock.now_ms(), error=error)


class ToolCallingModel(LanguageModel, Protocol):
    """A streaming chat model that can ask for tool calls."""

    def stream_events(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]]
    ) -> AsyncGenerator[str | ToolCall, None]:
        """Yield text deltas and, at the end of a turn that calls tools, the `ToolCall`\\ s.

        Raises:
            LlmError: as `LanguageModel.stream`.
        """
        ...


class ToolUsingLLM:
    """A `LanguageModel` that runs the model's tool calls, masked by a filler when slow.

    Args:
        model: the tool-calling model.
        registry: the tools.
        clock: the session clock.
        filler: when and what to say while tools run (None: never a filler).
        max_rounds: model → tools → model rounds per turn before giving up on tools.
    """

    def __init__(
        self,
        model: ToolCallingModel,
        registry: ToolRegistry,
        clock: Clock,
        filler: FillerConfig | None = None,
        max_rounds: int = 3,
    ) -> None:
        self.model = model
        self.registry = registry
        self.clock = clock
        self.filler = filler or FillerConfig()
        self.max_rounds = max_rounds
        self.name = f"{model.name} + tools"
        self.simulated = model.simulated
        self._fillers = 0

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """The reply, running tools as the model asks (see the module docstring)."""
        history = list(messages)
        records: list[dict[str, Any]] = []
        spoke = False
        for _ in range(self.max_rounds):
            calls: list[ToolCall] = []
            text = ""
            async for event in self.model.stream_events(history, self.registry.specs()):
                if isinstance(event, ToolCall):
                    calls.append(event)
                elif event:
                    text += event
                    spoke = True
                    yield event
            if not calls:
                break
            started = self.clock.now_ms()
            if not spoke:
                mark("tool_start", started)
            schedule = FillerSchedule(self.filler, started, self._fillers)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self.registry.call(c, self.clock)) for c in calls]
                everything = asyncio.gather(*tasks)
                timer = tg.create_task(self.clock.sleep_until_ms(schedule.due_ms))
                waits: set[asyncio.Future[Any]] = {everything, timer}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                timer.cancel()
                if not everything.done() and (line := schedule.poll(self.clock.now_ms())):
                    self._fillers += 1
                    note("tool_filler", {"text": line.text, "at_ms": round(line.at_ms, 3)})
                    spoke = True
                    yield FillerText(line.text + " ", "tool", self.filler.fade_ms)
                results = await everything
            schedule.answered(self.clock.now_ms())
            mark("tool_end", self.clock.now_ms())
            records.extend(r.to_json() for r in results)
            if any((t := self.registry.get(r.call.name)) and t.live_data for r in results):
                note("uncacheable", True)
            history.append(ChatMessage("assistant", text, tool_calls=tuple(calls)))
            history.extend(ChatMessage("tool", r.content, tool_call_id=r.call.id) for r in results)
        if records:
            note("tools", records)
