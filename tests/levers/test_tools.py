"""Tool calls: the scripted and OpenAI-compatible clients, masking, prefetch, the tool term."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest

from earshot.clock import SimulatedClock
from earshot.levers.filler import FillerConfig, FillerText
from earshot.levers.notes import bind_turn_notes
from earshot.levers.openai_tools import OpenAIToolLLM
from earshot.levers.tools import Tool, ToolRegistry, ToolUsingLLM
from earshot.llm.base import ChatMessage, ToolCall
from earshot.llm.scripted import LatencyProfile, RuleSet, ScriptedLLM
from earshot.metrics.turn import TurnRecord, decompose

RULES = RuleSet.model_validate(
    {
        "rules": [
            {
                "pattern": "time",
                "tool": {"name": "get_time", "arguments": {"zone": "UTC"}},
                "reply": "It is {result} now.",
            },
            {"pattern": "weather", "tool": {"name": "weather"}, "reply": "Today: {result}."},
        ],
        "default": "Okay.",
    }
)
PROFILE = LatencyProfile(ttft_ms=100.0, ms_per_token=10.0)


def registry(clock: SimulatedClock, tool_ms: float, calls: list[str]) -> ToolRegistry:
    async def get_time(zone: str) -> str:
        calls.append(zone)
        await clock.sleep_ms(tool_ms)
        return "three pm"

    async def weather() -> dict[str, str]:
        await clock.sleep_ms(10.0)
        return {"sky": "sunny"}

    return ToolRegistry(
        [
            Tool(
                "get_time",
                "the time in a zone",
                get_time,
                live_data=True,
                parameters={"type": "object", "properties": {"zone": {"type": "string"}}},
            ),
            Tool("weather", "today's weather", weather, predictable=True),
        ]
    )


def run(clock: SimulatedClock, llm: ToolUsingLLM, text: str) -> tuple[str, TurnRecord]:
    turn = TurnRecord(turn=1)

    async def main() -> str:
        out = ""
        turn.marks_ms["llm_request"] = clock.now_ms()
        with bind_turn_notes(turn.extra, turn.marks_ms):
            async with contextlib.aclosing(llm.stream([ChatMessage("user", text)])) as stream:
                async for delta in stream:
                    turn.marks_ms.setdefault("llm_first_token", clock.now_ms())
                    out += delta
        return out

    return clock.run(main), turn


def test_a_quick_tool_needs_no_filler_and_its_time_is_its_own_term() -> None:
    clock = SimulatedClock(charge_compute=False)
    zones: list[str] = []
    llm = ToolUsingLLM(
        ScriptedLLM(RULES, PROFILE, clock),
        registry(clock, 120.0, zones),
        clock,
        FillerConfig(threshold_ms=300.0),
    )
    text, turn = run(clock, llm, "what time is it")
    assert text == "It is three pm now." and zones == ["UTC"]
    assert "tool_filler" not in turn.extra and turn.extra["uncacheable"] is True
    assert turn.extra["tools"] == [
        {
            "name": "get_time",
            "arguments": '{"zone": "UTC"}',
            "ms": 120.0,
            "prefetched": False,
            "error": None,
        }
    ]
    m = turn.marks_ms
    assert (m["tool_start"], m["tool_end"], m["llm_first_token"]) == (100.0, 220.0, 320.0)
    terms = decompose(
        {
            **dict.fromkeys(("speech_end", "end_of_turn", "stt_final"), 0.0),
            **m,
            **dict.fromkeys(
                ("first_sentence", "tts_first_audio", "playout_queued", "playout_start"), 320.0
            ),
        }
    )
    assert terms["tool"] == 120.0 and terms["llm_ttft"] == 200.0  # two model round trips


def test_a_slow_tool_is_masked_by_a_filler_marked_for_the_cut_at_the_threshold() -> None:
    clock = SimulatedClock(charge_compute=False)
    llm = ToolUsingLLM(
        ScriptedLLM(RULES, PROFILE, clock),
        registry(clock, 900.0, []),
        clock,
        FillerConfig(threshold_ms=300.0, lines=("One moment.",), fade_ms=15.0),
    )
    text, turn = run(clock, llm, "what time is it")
    assert text == "One moment. It is three pm now."
    deltas: list[str] = []

    async def collect() -> None:
        messages = [ChatMessage("user", "what time is it")]
        async with contextlib.aclosing(llm.stream(messages)) as stream:
            deltas.extend([delta async for delta in stream])

    clock.run(collect)
    # The filler is marked, so the response runner cuts it at a word when the answer is ready.
    assert isinstance(deltas[0], FillerText) and deltas[0] == "One moment. "
    assert deltas[0].source == "tool" and deltas[0].fade_ms == 15.0
    assert turn.extra["tool_filler"] == {"text": "One moment.", "at_ms": 400.0}
    # The caller hears the filler at 400 ms; the tool answers at 1000 ms.
    assert turn.marks_ms["llm_first_token"] == pytest.approx(400.0)
    assert turn.marks_ms["tool_end"] == pytest.approx(1000.0)


def test_predictable_calls_are_prefetched_and_served_at_once() -> None:
    clock = SimulatedClock(charge_compute=False)
    tools = registry(clock, 10.0, [])
    llm = ToolUsingLLM(ScriptedLLM(RULES, PROFILE, clock), tools, clock)

    async def prefetch() -> int:
        return await tools.prefetch(clock)

    assert clock.run(prefetch) == 1
    text, turn = run(clock, llm, "how is the weather")
    assert text == 'Today: {"sky": "sunny"}.'
    assert turn.extra["tools"][0]["prefetched"] is True and turn.extra["tools"][0]["ms"] == 0.0


def test_a_failing_or_unknown_tool_is_reported_to_the_model_not_raised() -> None:
    clock = SimulatedClock(charge_compute=False)

    async def broken(zone: str) -> str:
        raise RuntimeError("clock service down")

    tools = ToolRegistry([Tool("get_time", "time", broken)])
    result = clock.run(lambda: tools.call(ToolCall("c1", "get_time", '{"zone": "UTC"}'), clock))
    assert result.error == "RuntimeError: clock service down"
    assert json.loads(result.content) == {"error": "RuntimeError: clock service down"}
    missing = clock.run(lambda: tools.call(ToolCall("c2", "nope", "{}"), clock))
    assert missing.error == "no tool named 'nope'"
    with pytest.raises(ValueError, match="already registered"):
        tools.register(Tool("get_time", "again", broken))


def _sse(*chunks: dict[str, Any]) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )


def test_openai_client_sends_tools_and_joins_streamed_tool_call_fragments() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["messages"][-1]["role"] == "tool":
            chunks = [{"choices": [{"delta": {"content": "It is noon."}, "finish_reason": "stop"}]}]
        else:
            chunks = [
                {
                    "choices": [
                        {
                            "delta": {
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "id": "call_9",
                                        "function": {"name": "get_time", "arguments": '{"zo'},
                                    }
                                ]
                            }
                        }
                    ]
                },
                {
                    "choices": [
                        {
                            "delta": {
                                "tool_calls": [
                                    {"index": 0, "function": {"arguments": 'ne": "UTC"}'}}
                                ]
                            },
                            "finish_reason": "tool_calls",
                        }
                    ]
                },
            ]
        return httpx.Response(
            200, content=_sse(*chunks), headers={"content-type": "text/event-stream"}
        )

    clock = SimulatedClock(charge_compute=False)
    model = OpenAIToolLLM("http://llm.test/v1", "m", clock, system_prompt="")
    calls: list[str] = []

    async def get_time(zone: str) -> str:
        calls.append(zone)
        return "12:00"

    tools = ToolRegistry([Tool("get_time", "the time", get_time)])
    llm = ToolUsingLLM(model, tools, clock)

    async def main() -> str:
        model._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        model._client_loop = asyncio.get_running_loop()
        out = ""
        async for delta in llm.stream([ChatMessage("user", "time?")]):
            out += delta
        await model.aclose()
        return out

    assert clock.run(main) == "It is noon."
    assert calls == ["UTC"]
    assert seen[0]["tools"][0]["function"]["name"] == "get_time"
    assistant, tool_msg = seen[1]["messages"][-2:]
    assert assistant["tool_calls"] == [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'},
        }
    ]
    assert tool_msg == {"role": "tool", "content": "12:00", "tool_call_id": "call_9"}
