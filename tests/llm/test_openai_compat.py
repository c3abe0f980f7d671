"""OpenAICompatLLM against a real HTTP server on 127.0.0.1 (tests/llm/sse_server.py).

Real network, real clock (`SystemClock` under ``asyncio.run``) except where a test checks the
`SimulatedClock` integration. Time-outs are short (300 ms) so the suite stays fast; nothing
asserts on wall-clock durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator, Sequence

import pytest
from sse_server import Delta, ErrorReply, Raw, SseReply, SseServer, Stall

from earshot.clock import Clock, SimulatedClock, SystemClock
from earshot.llm import DEFAULT_SYSTEM_PROMPT, LlmTimeouts, OpenAICompatLLM, make_llm
from earshot.llm.base import ChatMessage, LlmError

SHORT = LlmTimeouts(connect_ms=300.0, first_token_ms=300.0, inter_token_ms=300.0)
HELLO = [ChatMessage("user", "hello")]


@pytest.fixture
def server() -> Iterator[SseServer]:
    with SseServer() as srv:
        yield srv


def make(base_url: str, clock: Clock | None = None, **kwargs: object) -> OpenAICompatLLM:
    options: dict[str, object] = {"timeouts": SHORT, **kwargs}
    return OpenAICompatLLM(base_url, "test-model", clock or SystemClock(), **options)  # type: ignore[arg-type]


async def collect(llm: OpenAICompatLLM, messages: Sequence[ChatMessage] = HELLO) -> list[str]:
    return [delta async for delta in llm.stream(messages)]


def run_collect(llm: OpenAICompatLLM, messages: Sequence[ChatMessage] = HELLO) -> list[str]:
    async def main() -> list[str]:
        try:
            return await collect(llm, messages)
        finally:
            await llm.aclose()

    return asyncio.run(main())


def test_deltas_arrive_in_order(server: SseServer) -> None:
    server.queue(SseReply.of("Block", " books", " were", " carved", "."))
    assert run_collect(make(server.base_url)) == ["Block", " books", " were", " carved", "."]


def test_request_carries_history_system_prompt_and_key(server: SseServer) -> None:
    history = [
        ChatMessage("user", "Tell me about block books."),
        ChatMessage("assistant", "Block books were carved", interrupted=True),
        ChatMessage("user", "Wait, carved from what?"),
    ]
    run_collect(make(server.base_url, api_key="sk-test", temperature=0.2), history)

    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["model"] == "test-model"
    assert body["stream"] is True
    assert body["temperature"] == 0.2
    assert "max_tokens" not in body
    # The interrupted turn goes out as exactly what the user heard, nothing added.
    assert body["messages"] == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "Tell me about block books."},
        {"role": "assistant", "content": "Block books were carved"},
        {"role": "user", "content": "Wait, carved from what?"},
    ]


def test_own_system_message_and_env_key(server: SseServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARSHOT_LLM_API_KEY", "sk-env")
    history = [ChatMessage("system", "Be terse."), ChatMessage("user", "hi")]
    run_collect(make(server.base_url, max_tokens=64), history)

    (request,) = server.requests
    assert request.headers["authorization"] == "Bearer sk-env"
    assert request.json()["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi"},
    ]
    assert request.json()["max_tokens"] == 64


def test_no_key_sends_no_authorization(server: SseServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EARSHOT_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run_collect(make(server.base_url, system_prompt=""))
    (request,) = server.requests
    assert "authorization" not in request.headers
    assert request.json()["messages"] == [{"role": "user", "content": "hello"}]


def test_stops_at_done_even_if_the_server_keeps_the_stream_open(server: SseServer) -> None:
    # After [DONE] the server sends one more delta and then stalls without ending the body:
    # the client must end the reply at [DONE] and ignore the rest.
    server.queue(
        SseReply((Delta("One"), Delta(" two"), Raw("data: [DONE]\n\n"), Delta(" three"), Stall()))
    )
    assert run_collect(make(server.base_url)) == ["One", " two"]


def test_keeps_the_connection_for_the_next_turn(server: SseServer) -> None:
    llm = make(server.base_url)

    async def main() -> tuple[list[str], list[str]]:
        try:
            return await collect(llm), await collect(llm)
        finally:
            await llm.aclose()

    first, second = asyncio.run(main())
    assert first == second == ["Hello", " there", "!"]
    ports = [r.client_port for r in server.requests]
    assert len(ports) == 2
    assert ports[0] == ports[1]  # the second request reused the first TCP connection


def test_sse_comments_and_multi_line_data_are_parsed(server: SseServer) -> None:
    chunk = '{"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}'
    server.queue(
        SseReply(
            (
                Raw(": keep-alive\n\n"),
                Raw("event: message\ndata:" + chunk[:13] + "\ndata:" + chunk[13:] + "\n\n"),
            ),
            finish=False,
        )
    )
    # Multi-line data fields join with "\n", which JSON treats as whitespace.
    assert run_collect(make(server.base_url)) == ["Hi"]


def test_http_500_raises_with_the_server_message(server: SseServer) -> None:
    server.queue(
        ErrorReply(500, '{"error": {"message": "model overloaded", "type": "server_error"}}')
    )
    with pytest.raises(LlmError) as info:
        run_collect(make(server.base_url))
    message = str(info.value)
    assert "HTTP 500" in message
    assert "model overloaded" in message
    assert server.base_url in message


def test_a_200_json_error_instead_of_a_stream_shows_the_server_message(
    server: SseServer,
) -> None:
    # llama.cpp's server answers an over-long prompt this way (HTTP 200, a JSON error body).
    body = '{"error": {"message": "the request exceeds the available context size"}}'
    server.queue(ErrorReply(200, body))
    with pytest.raises(LlmError) as info:
        run_collect(make(server.base_url))
    message = str(info.value)
    assert "without server-sent events" in message
    assert "exceeds the available context size" in message


def test_http_404_suggests_checking_url_and_model(server: SseServer) -> None:
    server.queue(ErrorReply(404, '{"detail": "Not Found"}'))
    with pytest.raises(LlmError, match=r"HTTP 404 .*Not Found.*--llm-base-url"):
        run_collect(make(server.base_url))


def test_stall_before_first_token_times_out(server: SseServer) -> None:
    server.queue(SseReply((Stall(), Delta("too late"))))
    with pytest.raises(LlmError, match=r"no first token within 300 ms"):
        run_collect(make(server.base_url))


def test_stall_between_tokens_times_out_after_the_tokens_so_far(server: SseServer) -> None:
    server.queue(SseReply((Delta("Block"), Delta(" books"), Stall(), Delta(" never"))))
    received: list[str] = []

    async def main() -> None:
        llm = make(server.base_url)
        try:
            async for delta in llm.stream(HELLO):
                received.append(delta)
        finally:
            await llm.aclose()

    with pytest.raises(LlmError, match=r"stalled: no new token for 300 ms"):
        asyncio.run(main())
    assert received == ["Block", " books"]


def test_connection_refused_names_url_and_fix() -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LlmError) as info:
        run_collect(make(base_url))
    message = str(info.value)
    assert f"LLM server at {base_url} refused the connection" in message
    assert "--llm-base-url" in message


def test_malformed_json_line_raises(server: SseServer) -> None:
    server.queue(SseReply((Delta("Hi"), Raw('data: {"choices": [\n\n'))))
    with pytest.raises(LlmError, match=r"malformed JSON in its stream"):
        run_collect(make(server.base_url))


def test_error_event_mid_stream_raises(server: SseServer) -> None:
    server.queue(
        SseReply((Delta("Hi"), Raw('data: {"error": {"message": "context too long"}}\n\n')))
    )
    with pytest.raises(LlmError, match=r"error mid-stream: context too long"):
        run_collect(make(server.base_url))


def test_stream_cut_off_before_done_raises(server: SseServer) -> None:
    server.queue(SseReply((Delta("Block"), Delta(" books")), finish=False, done=False))
    with pytest.raises(LlmError, match=r"ended before data: \[DONE\]"):
        run_collect(make(server.base_url))


def test_closing_early_releases_the_request(server: SseServer) -> None:
    # Barge-in: the consumer stops after the first delta while the server is still streaming.
    server.queue(SseReply((Delta("Block"), Stall(), Delta(" books"))))
    clock = SimulatedClock(charge_compute=False)
    llm = make(server.base_url, clock)

    async def main() -> list[str]:
        got: list[str] = []
        try:
            async with contextlib.aclosing(llm.stream(HELLO)) as deltas:
                async for delta in deltas:
                    got.append(delta)
                    break
        finally:
            await llm.aclose()
        assert clock._pending == 0  # the busy() mark was released
        return got

    assert clock.run(main) == ["Block"]


def test_streams_under_simulated_clock(server: SseServer) -> None:
    # busy() makes the virtual-time loop wait for the real socket instead of jumping to the
    # first-token time-out.
    server.queue(SseReply.of("Never", " surpassed", "."))
    clock = SimulatedClock(charge_compute=False)
    llm = make(server.base_url, clock, timeouts=LlmTimeouts(first_token_ms=5000.0))

    async def main() -> list[str]:
        try:
            return await collect(llm)
        finally:
            await llm.aclose()

    assert clock.run(main) == ["Never", " surpassed", "."]


def test_factory_builds_openai_backend_and_checks_options() -> None:
    llm = make_llm("openai", SystemClock(), base_url="http://127.0.0.1:9/v1/", model="m")
    assert isinstance(llm, OpenAICompatLLM)
    assert llm.simulated is False
    assert llm.url == "http://127.0.0.1:9/v1/chat/completions"
    with pytest.raises(ValueError, match="--llm-base-url"):
        make_llm("openai", SystemClock(), model="m")
    with pytest.raises(ValueError, match="--llm-model"):
        make_llm("openai", SystemClock(), base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAICompatLLM("127.0.0.1:9/v1", "m", SystemClock())
    with pytest.raises(ValueError, match="unknown LLM kind"):
        make_llm("gpt", SystemClock())  # type: ignore[arg-type]
