"""OpenAI-style function calling on the OpenAI-compatible client.

`OpenAIToolLLM` is `earshot.llm.openai_compat.OpenAICompatLLM` plus `stream_events`: the
request carries ``tools`` (and the history its ``tool_calls`` / ``tool`` messages), and the
streamed ``choices[0].delta.tool_calls`` fragments — ``{index, id, function: {name,
arguments}}``, the arguments arriving in pieces — are joined per index into `ToolCall`\\ s,
yielded when the stream ends. Time-outs, errors and connection handling are the parent's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from earshot.llm.base import ChatMessage, LlmError, ToolCall
from earshot.llm.openai_compat import OpenAICompatLLM


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """One history message in the OpenAI chat format, tool calls and results included."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
    return out


@dataclass(slots=True)
class _Fragments:
    """``delta.tool_calls`` pieces joined per index."""

    calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def add(self, pieces: Any) -> None:
        if not isinstance(pieces, list):
            return
        for piece in pieces:
            if not isinstance(piece, dict):
                continue
            index = piece.get("index", 0)
            call = self.calls.setdefault(int(index), {"id": "", "name": "", "arguments": ""})
            if isinstance(piece.get("id"), str):
                call["id"] = piece["id"]
            function = piece.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["name"] += function["name"]
                if isinstance(function.get("arguments"), str):
                    call["arguments"] += function["arguments"]

    def done(self) -> list[ToolCall]:
        return [
            ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"] or "{}")
            for i, c in sorted(self.calls.items())
            if c["name"]
        ]


class OpenAIToolLLM(OpenAICompatLLM):
    """The OpenAI-compatible client with function calling (see the module docstring)."""

    def tool_request_body(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The JSON body: the parent's, with tool-aware messages and ``tools``."""
        body = self.request_body(messages)
        wire: list[dict[str, Any]] = []
        if self.system_prompt and not (messages and messages[0].role == "system"):
            wire.append({"role": "system", "content": self.system_prompt})
        wire.extend(wire_message(m) for m in messages)
        body["messages"] = wire
        if tools:
            body["tools"] = [dict(t) for t in tools]
        return body

    async def stream_events(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]]
    ) -> AsyncGenerator[str | ToolCall, None]:
        """Yield content deltas, then the tool calls the model asked for (if any).

        Raises:
            LlmError: as `OpenAICompatLLM.stream`.
        """
        client = self._get_client()
        request = client.build_request(
            "POST", self.url, json=self.tool_request_body(messages, tools), headers=self._headers()
        )
        fragments = _Fragments()
        with self.clock.busy():
            stage = "first token"
            deadline_ms = self.clock.now_ms() + self.timeouts.first_token_ms
            response = await self._within(deadline_ms, stage, self._send(client, request))
            try:
                if response.status_code >= 400:
                    raise await self._within(deadline_ms, stage, self._status_error(response))
                events = _events(response.aiter_lines(), self.base_url)
                try:
                    while chunk := await self._within(deadline_ms, stage, anext(events, None)):
                        content, pieces = chunk
                        fragments.add(pieces)
                        if content:
                            yield content
                        stage = "next token"
                        deadline_ms = self.clock.now_ms() + self.timeouts.inter_token_ms
                finally:
                    await events.aclose()
            finally:
                await response.aclose()
        for call in fragments.done():
            yield call


async def _events(
    lines: AsyncIterator[str], base_url: str
) -> AsyncGenerator[tuple[str, Any], None]:
    """SSE ``data:`` events → (content delta, tool-call fragments), until ``[DONE]``."""
    try:
        async for line in lines:
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise LlmError(
                    f"LLM server at {base_url} sent malformed JSON in its stream: {data[:200]!r}"
                ) from None
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                raise LlmError(f"LLM server at {base_url} reported an error: {chunk['error']}")
            choices = chunk.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                continue
            delta = choices[0].get("delta")
            if not isinstance(delta, dict):
                continue
            content = delta.get("content")
            yield (content if isinstance(content, str) else "", delta.get("tool_calls"))
    except httpx.HTTPError as exc:
        raise LlmError(
            f"LLM stream from {base_url} broke off: {type(exc).__name__}: {exc}"
        ) from exc
