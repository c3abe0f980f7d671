"""The LLM client lets nothing but `LlmError` out of a turn, and refuses bad URLs when built.

The exceptions below cannot be produced on demand by a real server (a bug inside the HTTP
stack, a transport that raises something unexpected), so they come from an httpx
handler-function transport; everything else about the client is real.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from earshot.clock import SystemClock
from earshot.llm import OpenAICompatLLM
from earshot.llm.base import ChatMessage, LlmError

HELLO = [ChatMessage("user", "hello")]


def _collect_with(handler: httpx.MockTransport) -> list[str]:
    llm = OpenAICompatLLM("http://bob:pw-0123456@127.0.0.1:8000/v1", "m", SystemClock())

    async def main() -> list[str]:
        llm._client = httpx.AsyncClient(transport=handler)
        llm._client_loop = asyncio.get_running_loop()
        try:
            return [d async for d in llm.stream(HELLO)]
        finally:
            await llm.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("boom"), KeyError("choices"), httpx.InvalidURL("bad"), UnicodeDecodeError(
        "utf-8", b"\xff", 0, 1, "invalid start byte")],
)  # fmt: skip
def test_any_exception_becomes_an_llm_error(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(LlmError) as info:
        _collect_with(httpx.MockTransport(handler))
    message = str(info.value)
    assert message.startswith("LLM request to http://***@127.0.0.1:8000/v1")
    assert "pw-0123456" not in message


def test_a_malformed_url_is_refused_when_the_client_is_built() -> None:
    for url, why in [
        ("http://127.0.0.1:99999/v1", "Port out of range"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://a:b@[::1", "Invalid IPv6 URL"),
    ]:
        with pytest.raises(ValueError, match=why) as info:
            OpenAICompatLLM(url, "m", SystemClock())
        assert "(set --llm-base-url)" in str(info.value)
        assert ":b@" not in str(info.value)
