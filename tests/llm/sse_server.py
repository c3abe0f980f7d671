"""A real OpenAI-compatible streaming server on 127.0.0.1 for tests (stdlib only).

Serves ``POST /v1/chat/completions`` as server-sent events over HTTP/1.1 chunked transfer
encoding, the way vLLM, llama.cpp server or Ollama do, from a script of steps the test queues.
Every request received is recorded (path, headers, JSON body, client port), so tests can assert
what the client sent — e.g. the history after a barge-in.

    with SseServer() as server:
        server.queue(SseReply.of("Hello", " there", "!"))
        llm = OpenAICompatLLM(server.base_url, "test-model", SystemClock())
        ...
        assert server.requests[0].json()["messages"][-1]["content"] == "hi"

With no reply queued, the server streams `SseServer.default_reply`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Delta:
    """One ``chat.completion.chunk`` event whose ``choices[0].delta.content`` is ``content``."""

    content: str


@dataclass(frozen=True)
class Raw:
    """Bytes of the event stream written as given (e.g. ``"data: {oops\\n\\n"``)."""

    text: str


@dataclass(frozen=True)
class Stall:
    """Send nothing for up to ``seconds`` (or until the server closes)."""

    seconds: float = 30.0


Step = Delta | Raw | Stall


@dataclass(frozen=True)
class SseReply:
    """A streamed 200 reply.

    Attributes:
        steps: what to send, in order, after the role chunk.
        finish: send a ``finish_reason: "stop"`` chunk after the steps.
        done: send ``data: [DONE]`` last.
    """

    steps: tuple[Step, ...]
    finish: bool = True
    done: bool = True

    @classmethod
    def of(cls, *contents: str) -> SseReply:
        """A well-formed reply streaming ``contents`` as consecutive deltas."""
        return cls(tuple(Delta(c) for c in contents))


@dataclass(frozen=True)
class ErrorReply:
    """A non-streamed error response with a JSON (or plain) body."""

    status: int
    body: str
    headers: tuple[tuple[str, str], ...] = ()
    """Extra response headers, e.g. ``(("Location", "http://elsewhere/v1"),)`` for a redirect."""


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_port: int

    def json(self) -> Any:
        return json.loads(self.body)


def chunk_event(content: str | None, *, role: bool = False, finish: str | None = None) -> str:
    """An OpenAI ``chat.completion.chunk`` server-sent event."""
    delta: dict[str, str] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    chunk = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


@dataclass
class _State:
    replies: deque[SseReply | ErrorReply] = field(default_factory=deque)
    requests: list[ReceivedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)


class SseServer:
    """The server; use as a context manager (starts a thread, stops and releases stalls)."""

    default_reply = SseReply.of("Hello", " there", "!")

    def __init__(self) -> None:
        self._state = _State()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self._state, self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def queue(self, *replies: SseReply | ErrorReply) -> None:
        """Serve these replies to the next requests, in order."""
        with self._state.lock:
            self._state.replies.extend(replies)

    def __enter__(self) -> SseServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _handler_for(state: _State, server: SseServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(
                    ReceivedRequest(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        client_port=int(self.client_address[1]),
                    )
                )
                reply = state.replies.popleft() if state.replies else server.default_reply
            try:
                if isinstance(reply, ErrorReply):
                    self._send_error(reply)
                else:
                    self._send_stream(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client hung up (time-out, barge-in)

        def _send_error(self, reply: ErrorReply) -> None:
            payload = reply.body.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _send_stream(self, reply: SseReply) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write(chunk_event("", role=True))
            for step in reply.steps:
                match step:
                    case Delta(content):
                        self._write(chunk_event(content))
                    case Raw(text):
                        self._write(text)
                    case Stall(seconds):
                        if state.release.wait(seconds):
                            self.close_connection = True
                            return
            if reply.finish:
                self._write(chunk_event(None, finish="stop"))
            if reply.done:
                self._write("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

        def _write(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    return Handler
