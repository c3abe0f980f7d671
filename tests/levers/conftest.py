"""A stand-in OpenAI-compatible upstream for the latency proxy's tests.

The real upstream is a llama.cpp server (`earshot.evals.llm_rig`), which needs
llama-cpp-python built from source (the test extra builds it; a plain install may not have it)
and takes seconds per reply. These tests put the proxy in front of this small aiohttp server
instead, to check the plumbing exactly: it streams a fixed five-token reply in the OpenAI
chunk format, 5 ms per token, and counts the requests that reached it. Asked for an unstreamed
reply, it answers one token with ``usage.prompt_tokens`` (a word count) after 0.2 ms per word
not shared with the previous prompt's head: a model of a server that reuses a cached prefix.
Tests with the real server are in ``test_real_llm.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class Upstream:
    base_url: str
    requests: list[dict[str, object]] = field(default_factory=list)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    from aiohttp import web

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    state = Upstream(f"http://127.0.0.1:{port}/v1")
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    previous: list[str] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append(body)
        if body.get("stream") is False:
            words = " ".join(m["content"] for m in body["messages"]).split()
            shared = 0
            while shared < min(len(words), len(previous)) and words[shared] == previous[shared]:
                shared += 1
            previous[:] = words
            await asyncio.sleep(0.0002 * (len(words) - shared))
            return web.json_response(
                {
                    "choices": [{"message": {"role": "assistant", "content": "Hi"}}],
                    "usage": {"prompt_tokens": len(words), "completion_tokens": 1},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, word in enumerate(["Hello ", "from ", "the ", "stub ", "server."]):
            chunk = {
                "choices": [
                    {"delta": {"content": word}, "finish_reason": "stop" if i == 4 else None}
                ]
            }
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await asyncio.sleep(0.005)
        await response.write(b"data: [DONE]\n\n")
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "stub"}]})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        loop_box.append(asyncio.get_running_loop())
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    ready.wait(10)
    yield state
    loop_box[0].call_soon_threadsafe(stop[0].set)
    thread.join(10)
    sock.close()
