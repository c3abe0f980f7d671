"""A streaming client for OpenAI-compatible chat servers (vLLM, llama.cpp server, Ollama, hosted).

Sends ``POST {base_url}/chat/completions`` with ``"stream": true`` and yields each
``choices[0].delta.content`` of the server-sent events (``data: {...}`` lines, ended by
``data: [DONE]``). Written on httpx directly rather than the ``openai`` package: httpx is
already a dependency, the protocol is one request and one line format, and it keeps every
stage's time-out and error message in earshot's hands.

Time-outs are per stage, in the spirit of ``httpx.Timeout(5.0, connect=10.0)``: see
`LlmTimeouts`. They run on the injected clock's event loop, and the request is wrapped in
``clock.busy()`` so a `SimulatedClock` waits for the real network instead of skipping ahead.

Every failure — refused connection, a redirect, HTTP status >= 400, time-out, malformed stream,
and any other exception from httpx or the network — is raised as `LlmError` with a message that
names what failed and how to fix it, with credentials redacted (`earshot.safe_text.redact`; the
API key is registered as a secret). No other exception leaves `OpenAICompatLLM.stream`, so the
session can always catch it and speak `FALLBACK_LINE`. A malformed base URL is refused when the
client is built (`check_base_url`), not at the first turn.

The HTTP client is created on first use and kept, so later turns reuse the open connection
(no TCP/TLS setup on the critical path); call `aclose` when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from earshot.clock import Clock
from earshot.llm.base import ChatMessage, LlmError
from earshot.safe_text import redact, register_secret

T = TypeVar("T")

FALLBACK_LINE = "Sorry, I'm having trouble answering right now."
"""What the agent says when the LLM fails (the session speaks it on `LlmError`)."""

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Your replies are spoken aloud by a text-to-speech "
    "voice, so keep them short: one to three sentences of plain conversational speech. "
    "Never use markdown, lists, code, emoji or symbols that cannot be read aloud."
)
"""The default system prompt: short, spoken replies without markdown."""

API_KEY_ENV_VARS = ("EARSHOT_LLM_API_KEY", "OPENAI_API_KEY")
"""Environment variables read for the API key when none is given, first set wins."""


TIMEOUT_FLAGS = {
    "connect_ms": "--llm-connect-timeout-ms",
    "first_token_ms": "--llm-first-token-timeout-ms",
    "inter_token_ms": "--llm-inter-token-timeout-ms",
}
"""The `earshot converse` flag that sets each `LlmTimeouts` field (named in time-out errors)."""


def check_base_url(url: str) -> str:
    """Check an OpenAI-compatible base URL before any request is made.

    Returns:
        ``url`` without a trailing ``/``.

    Raises:
        ValueError: the URL does not parse (e.g. ``http://[::1``), is not http(s), has no host,
            or a port outside 1–65535 (e.g. ``:99999``); the message shows the URL with any
            credentials redacted and an example of a good one.
    """
    shown = redact(url)
    example = "e.g. http://127.0.0.1:8000/v1"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{shown!r} is not a valid URL ({exc}); {example}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{shown!r} must start with http:// or https://; {example}")
    if not parts.hostname:
        raise ValueError(f"{shown!r} has no host name; {example}")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{shown!r} has port {port}, outside 1-65535; {example}")
    if any(c.isspace() for c in url):
        raise ValueError(f"{shown!r} holds a space; {example}")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{shown!r} is not a valid URL ({exc}); {example}") from None
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class LlmTimeouts:
    """Per-stage time-outs of one streamed request (ms).

    Args:
        connect_ms: to open the TCP (and TLS) connection.
        first_token_ms: from sending the request to the first content token; this covers
            connecting, queueing and prompt processing. Default 5000 ms, well above the
            600–900 ms LLM TTFT of the 1.5–2.0 s pipeline budgets ("Latency Budgeting") so
            only a stuck server trips it.
        inter_token_ms: the longest gap allowed between two streamed events once tokens flow.

    Raises:
        ValueError: if a time-out is not positive.
    """

    connect_ms: float = 2000.0
    first_token_ms: float = 5000.0
    inter_token_ms: float = 2000.0

    def __post_init__(self) -> None:
        for field in ("connect_ms", "first_token_ms", "inter_token_ms"):
            value = getattr(self, field)
            if not (value > 0 and value < float("inf")):
                raise ValueError(
                    f"LLM time-out {field} must be a finite number of ms > 0, got {value} "
                    f"(set {TIMEOUT_FLAGS[field]})"
                )


class OpenAICompatLLM:
    """Streams chat completions from an OpenAI-compatible server.

    Args:
        base_url: API root including the version, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name the server expects.
        clock: the session clock (time-outs run on its loop; requests are marked `busy`).
        api_key: bearer token; None reads ``EARSHOT_LLM_API_KEY`` then ``OPENAI_API_KEY``;
            no key sends no ``Authorization`` header (fine for local servers).
        timeouts: per-stage time-outs.
        system_prompt: prepended as the system message unless the history starts with its
            own; ``""`` sends none.
        temperature: sampling temperature sent with the request.
        max_tokens: reply length cap sent with the request; None sends none.
    """

    simulated = False

    def __init__(
        self,
        base_url: str,
        model: str,
        clock: Clock,
        *,
        api_key: str | None = None,
        timeouts: LlmTimeouts | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        temperature: float = 0.7,
        max_tokens: int | None = None,
    ) -> None:
        try:
            self.base_url = check_base_url(base_url)
        except ValueError as exc:
            raise ValueError(f"LLM base URL {exc} (set --llm-base-url)") from None
        if not model:
            raise ValueError("an LLM model name is required (set --llm-model)")
        self.shown_url = redact(self.base_url)
        """The base URL as it may be printed or written: credentials redacted."""
        self.model = model
        self.clock = clock
        self.api_key = api_key if api_key is not None else _key_from_env()
        register_secret(self.api_key)
        self.timeouts = timeouts or LlmTimeouts()
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.name = f"openai-compat({model} @ {self.shown_url})"
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """The chat completions endpoint."""
        return f"{self.base_url}/chat/completions"

    def request_body(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        """The JSON body sent for this history.

        An interrupted assistant message is sent as its content only — the words the user
        heard — with nothing added.
        """
        wire: list[dict[str, str]] = []
        if self.system_prompt and not (messages and messages[0].role == "system"):
            wire.append({"role": "system", "content": self.system_prompt})
        wire.extend({"role": m.role, "content": m.content} for m in messages)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": wire,
            "stream": True,
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yield the reply's text deltas as the server streams them.

        Every exception but cancellation leaves as `LlmError`, its message redacted.

        The HTTP response stays open, and the clock marked busy, until the iterator is
        exhausted or closed: when abandoning it early (barge-in), close it, e.g. iterate under
        ``async with contextlib.aclosing(llm.stream(history)) as deltas:``. The first-token
        time-out runs from the first ``__anext__``; the inter-token one from each later
        ``__anext__``, so a slow consumer does not trip it.

        Raises:
            LlmError: connection refused or timed out, HTTP status >= 400, no first token
                within ``first_token_ms``, a gap over ``inter_token_ms``, malformed JSON, an
                error event in the stream, a stream cut off before ``[DONE]``, a redirect, or
                any unexpected exception from the HTTP stack.
        """
        try:
            async with contextlib.aclosing(self._stream(messages)) as deltas:
                async for delta in deltas:
                    yield delta
        except LlmError as exc:
            raise LlmError(redact(str(exc))) from exc
        except Exception as exc:
            raise LlmError(
                f"LLM request to {self.shown_url} failed: {type(exc).__name__}: "
                f"{redact(str(exc))}; check --llm-base-url and the server"
            ) from exc

    async def _stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        client = self._get_client()
        request = client.build_request(
            "POST", self.url, json=self.request_body(messages), headers=self._headers()
        )
        with self.clock.busy():
            stage = "first token"
            deadline_ms = self.clock.now_ms() + self.timeouts.first_token_ms
            response = await self._within(deadline_ms, stage, self._send(client, request))
            try:
                if 300 <= response.status_code < 400:
                    raise self._redirect_error(response)
                if response.status_code >= 400:
                    raise await self._within(deadline_ms, stage, self._status_error(response))
                lines = response.aiter_lines()
                deltas = _content_deltas(lines, response, self.shown_url)
                try:
                    while delta := await self._within(deadline_ms, stage, anext(deltas, None)):
                        yield delta
                        stage = "next token"
                        deadline_ms = self.clock.now_ms() + self.timeouts.inter_token_ms
                finally:
                    await deltas.aclose()
                await self._drain(lines)
            finally:
                await response.aclose()

    async def aclose(self) -> None:
        """Close the kept HTTP connection(s)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _drain(self, lines: AsyncIterator[str]) -> None:
        """Read what follows ``[DONE]`` (normally just the end of the body) so the connection
        can be reused, as the ``openai`` package does; give up after ``inter_token_ms``."""
        try:
            async with asyncio.timeout(self.timeouts.inter_token_ms / 1000.0):
                async for _ in lines:
                    pass
        except (TimeoutError, httpx.HTTPError):
            pass  # the connection is closed instead of reused; the reply is complete

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # A client is bound to the event loop it first ran on; a new loop needs a new one.
            connect_s = self.timeouts.connect_ms / 1000.0
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=connect_s, pool=connect_s)
            )
            self._client_loop = loop
        return self._client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectTimeout as exc:
            raise LlmError(
                f"LLM server at {self.shown_url} did not accept a connection within "
                f"{self.timeouts.connect_ms:g} ms; is it reachable? check --llm-base-url, or "
                f"raise {TIMEOUT_FLAGS['connect_ms']}"
            ) from exc
        except httpx.ConnectError as exc:
            raise LlmError(
                f"LLM server at {self.shown_url} refused the connection ({exc}); "
                "is it running? set --llm-base-url"
            ) from exc
        except httpx.HTTPError as exc:
            raise LlmError(
                f"LLM request to {self.shown_url}/chat/completions failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    async def _within(self, deadline_ms: float, stage: str, awaitable: Awaitable[T]) -> T:
        remaining_ms = deadline_ms - self.clock.now_ms()
        try:
            async with asyncio.timeout(max(0.0, remaining_ms) / 1000.0):
                return await awaitable
        except TimeoutError:
            raise LlmError(self._timeout_message(stage)) from None

    def _timeout_message(self, stage: str) -> str:
        if stage == "first token":
            return (
                f"LLM server at {self.shown_url} sent no first token within "
                f"{self.timeouts.first_token_ms:g} ms (model {self.model!r}); is it overloaded "
                f"or loading the model? raise {TIMEOUT_FLAGS['first_token_ms']} or use a "
                "faster model"
            )
        return (
            f"LLM stream from {self.shown_url} stalled: no new token for "
            f"{self.timeouts.inter_token_ms:g} ms between tokens (model {self.model!r}); "
            f"raise {TIMEOUT_FLAGS['inter_token_ms']} or check the server"
        )

    def _redirect_error(self, response: httpx.Response) -> LlmError:
        location = response.headers.get("location", "(no Location header)")
        return LlmError(
            f"LLM server at {self.shown_url} answered with a redirect (HTTP "
            f"{response.status_code} to {redact(location)}); earshot does not follow redirects "
            "for a streamed request: set --llm-base-url to the address it redirects to"
        )

    async def _status_error(self, response: httpx.Response) -> LlmError:
        try:
            await response.aread()
            detail = _error_detail(response.text)
        except httpx.HTTPError as exc:
            detail = f"(body unreadable: {exc})"
        hint = {
            401: "; set EARSHOT_LLM_API_KEY or OPENAI_API_KEY",
            403: "; check the API key's permissions",
            404: f"; check --llm-base-url (usually ends in /v1) and --llm-model ({self.model!r})",
            429: "; the server is rate-limiting, slow down or raise the quota",
        }.get(response.status_code, "")
        return LlmError(
            f"LLM server at {self.shown_url} answered HTTP {response.status_code} "
            f"for model {self.model!r}: {detail}{hint}"
        )


def _key_from_env() -> str | None:
    for name in API_KEY_ENV_VARS:
        if value := os.environ.get(name):
            return value
    return None


async def _content_deltas(
    lines: AsyncIterator[str], response: httpx.Response, base_url: str
) -> AsyncGenerator[str, None]:
    """Parse a server-sent-event stream into non-empty ``choices[0].delta.content`` texts.

    Follows the SSE format: ``data:`` lines accumulate until a blank line ends the event;
    comments (``:``) and other fields (``event:``, ``id:``, ``retry:``) are ignored. Stops at
    ``data: [DONE]``, leaving the rest of ``lines`` unread.

    Raises:
        LlmError: malformed JSON, an error event, the connection breaking, or the stream
            ending before ``[DONE]`` and before any ``finish_reason``.
    """
    data_lines: list[str] = []
    other_lines: list[str] = []  # a body that is not SSE (e.g. a JSON error with HTTP 200)
    num_events = 0
    finished = False
    try:
        async for line in lines:
            if line.startswith("data:"):
                data_lines.append(line[5:].removeprefix(" "))
                continue
            if line and not line.startswith(":") and num_events == 0 and len(other_lines) < 50:
                other_lines.append(line)
            if line or not data_lines:
                continue
            data, data_lines = "\n".join(data_lines), []
            num_events += 1
            if data.strip() == "[DONE]":
                return
            content, finish = _parse_chunk(data, base_url)
            finished = finished or finish
            if content:
                yield content
    except httpx.HTTPError as exc:
        raise LlmError(
            f"LLM stream from {base_url} broke off: {type(exc).__name__}: {exc}; "
            "check the server's log"
        ) from exc
    if data_lines:  # a last event with no blank line after it
        data = "\n".join(data_lines)
        num_events += 1
        if data.strip() == "[DONE]":
            return
        content, finish = _parse_chunk(data, base_url)
        finished = finished or finish
        if content:
            yield content
    if num_events == 0:
        content_type = response.headers.get("content-type", "none")
        said = _error_detail("\n".join(other_lines)) if other_lines else "(empty body)"
        raise LlmError(
            f"LLM server at {base_url} answered without server-sent events (Content-Type: "
            f"{content_type}): {redact(said)}; is --llm-base-url an OpenAI-compatible /v1 "
            "endpoint that supports stream: true?"
        )
    if not finished:
        raise LlmError(
            f"LLM stream from {base_url} ended before data: [DONE] or a finish_reason; "
            "the reply may be cut off"
        )


def _parse_chunk(data: str, base_url: str) -> tuple[str, bool]:
    """One ``chat.completion.chunk`` → (content delta, whether a finish_reason was given)."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise LlmError(
            f"LLM server at {base_url} sent malformed JSON in its stream ({exc.msg}): "
            f"{data[:200]!r}; is it an OpenAI-compatible server?"
        ) from None
    if not isinstance(chunk, dict):
        raise LlmError(
            f"LLM server at {base_url} sent a stream event that is not a JSON object: "
            f"{data[:200]!r}"
        )
    if "error" in chunk:
        raise LlmError(
            f"LLM server at {base_url} reported an error mid-stream: "
            f"{_error_message(chunk['error'])}"
        )
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", False  # e.g. a usage-only chunk
    choice = choices[0]
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return (content if isinstance(content, str) else ""), bool(choice.get("finish_reason"))


def _error_detail(body: str) -> str:
    """The human-readable message of an error response body (OpenAI, FastAPI or plain)."""
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()[:300] or "(empty body)"
    if isinstance(parsed, dict):
        for key in ("error", "detail", "message"):
            if key in parsed:
                return _error_message(parsed[key])
    return body.strip()[:300]


def _error_message(error: object) -> str:
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return str(error)[:300]
