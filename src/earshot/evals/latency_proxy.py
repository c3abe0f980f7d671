"""A latency-injecting proxy in front of an OpenAI-compatible server, on 127.0.0.1.

Every ``POST /v1/chat/completions`` is held for a delay drawn from a heavy-tailed TTFT
distribution (`TailProfile`) and then forwarded; the upstream's streamed response is relayed
chunk by chunk. The delay stands for what a hosted provider adds before the first token
(queueing, routing, prefill on a busy replica), so the first-token time a client sees is the
drawn delay plus the real upstream's own TTFT. A client that closes its connection during the
delay never reaches the upstream (a cancelled hedge costs nothing upstream); one that closes it
mid-stream closes the upstream request too. Other paths (``/v1/models``) pass straight through.

The proxy runs its own event loop in a thread, on real time, so it behaves the same whichever
clock the client uses (a `SimulatedClock` client marks the request `busy` and waits for it).

Requires aiohttp (``pip install 'earshot[levers]'``).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from earshot.clock import Stopwatch

if TYPE_CHECKING:
    from aiohttp import web

_PAN = 'T. Pan, "Voice AI in Production: Engineering the 300ms Latency Budget"'
_BUDGETING = '"Latency Budgeting: Speed Goals for Realtime Voice"'


@dataclass(frozen=True, slots=True)
class TailProfile:
    """A two-part TTFT distribution: a fast body and, with probability ``tail_probability``,
    a slow tail; each part a lognormal fitted to a median and a 99th percentile (ms).

    The default is shaped on published figures: the body is gpt-4o-mini, TTFT 120–200 ms
    (T. Pan) read as p50 160 ms (the midpoint) with 200 ms at its p90; the tail is a request that
    lands on a slow path, median ≈ 700 ms (T. Pan's GPT-4o figure) and p99 1500 ms (the top of
    the 800–1500 ms LLM stage of the sequential worst case, "Latency Budgeting"). A tail share of
    10 % is an assumption (no published figure): it puts the mixture's p99 near 1 s.
    """

    body_p50_ms: float = 160.0
    body_p90_ms: float = 200.0
    tail_probability: float = 0.10
    tail_p50_ms: float = 700.0
    tail_p99_ms: float = 1500.0
    name: str = "gpt-4o-mini + slow tail"
    source: str = (
        f"body: gpt-4o-mini TTFT 120–200 ms ({_PAN}); tail: median ≈ 700 ms (GPT-4o, {_PAN}), "
        f"p99 1500 ms (LLM 800–1500 ms, sequential worst case, {_BUDGETING}); "
        "tail share 10 % assumed"
    )

    def __post_init__(self) -> None:
        if not (
            0 < self.body_p50_ms <= self.body_p90_ms and 0 < self.tail_p50_ms <= self.tail_p99_ms
        ):
            raise ValueError(
                f"tail profile {self.name!r}: need 0 < p50 <= p90/p99 for body and tail, got "
                f"body {self.body_p50_ms}/{self.body_p90_ms}, tail {self.tail_p50_ms}/"
                f"{self.tail_p99_ms}"
            )
        if not 0 <= self.tail_probability <= 1:
            raise ValueError(f"tail_probability must lie in [0, 1], got {self.tail_probability}")

    def draw_ms(self, rng: random.Random) -> float:
        """One delay in ms."""
        if rng.random() < self.tail_probability:
            sigma = math.log(self.tail_p99_ms / self.tail_p50_ms) / 2.3263478740408408
            return rng.lognormvariate(math.log(self.tail_p50_ms), sigma)
        sigma = math.log(self.body_p90_ms / self.body_p50_ms) / 1.2815515655446004
        return rng.lognormvariate(math.log(self.body_p50_ms), sigma)

    def to_json(self) -> TailProfileDoc:
        return {
            "name": self.name,
            "body_p50_ms": self.body_p50_ms,
            "body_p90_ms": self.body_p90_ms,
            "tail_probability": self.tail_probability,
            "tail_p50_ms": self.tail_p50_ms,
            "tail_p99_ms": self.tail_p99_ms,
            "source": self.source,
        }


NO_DELAY = TailProfile(1e-3, 1e-3, 0.0, 1e-3, 1e-3, name="none", source="no injected delay")
"""A profile that injects (almost) nothing: the upstream's own latency only."""


class TailProfileDoc(TypedDict):
    """`TailProfile.to_json`: the injected first-token delay's shape (ms) and its source."""

    name: str
    body_p50_ms: float
    body_p90_ms: float
    tail_probability: float
    tail_p50_ms: float
    tail_p99_ms: float
    source: str


class ProxyCounters(TypedDict):
    """`ProxyStats.to_json`: the requests a proxy saw and how they ended."""

    requests: int
    forwarded: int
    cancelled_in_delay: int
    cancelled_streaming: int


@dataclass(slots=True)
class ProxyRequest:
    """One chat-completion request as the proxy saw it (real time, ms since the proxy started).

    Attributes:
        arrived_ms: the request reached the proxy.
        delay_ms: the injected delay drawn for it.
        forwarded_ms: it was sent upstream (None: the client closed during the delay).
        upstream_first_byte_ms: the upstream's first body bytes reached the proxy (the SSE role
            chunk a server may send before the prompt is processed).
        upstream_first_content_ms: the first chunk with non-empty ``content`` reached the proxy:
            upstream first token, so ``upstream_first_content_ms - forwarded_ms`` is the real
            server's own TTFT, queueing included.
        closed_by_client: the client closed the stream before its end.
        last_user: the last user message's text (to tell requests apart in a report).
        label: the proxy's `LatencyProxy.label` when the request arrived (e.g. the run).
    """

    arrived_ms: float
    delay_ms: float
    label: str = ""
    forwarded_ms: float | None = None
    upstream_first_byte_ms: float | None = None
    upstream_first_content_ms: float | None = None
    closed_by_client: bool = False
    last_user: str = ""

    @property
    def upstream_ttft_ms(self) -> float | None:
        """The real server's own first-token time (queueing included, the injected delay
        excluded); None if the request never got a token through."""
        if self.forwarded_ms is None or self.upstream_first_content_ms is None:
            return None
        return self.upstream_first_content_ms - self.forwarded_ms

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "arrived_ms": r(self.arrived_ms),
            "delay_ms": r(self.delay_ms),
            "forwarded_ms": r(self.forwarded_ms),
            "upstream_first_byte_ms": r(self.upstream_first_byte_ms),
            "upstream_first_content_ms": r(self.upstream_first_content_ms),
            "closed_by_client": self.closed_by_client,
            "last_user": self.last_user,
            "label": self.label,
            "upstream_ttft_ms": r(self.upstream_ttft_ms),
        }


def _last_user(body: bytes) -> str:
    import json

    try:
        messages = json.loads(body).get("messages") or []
    except (ValueError, AttributeError):
        return ""
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users and isinstance(users[-1], str) else ""


_CONTENT = re.compile(rb'"content"\s*:\s*"[^"]')


@dataclass(slots=True)
class ProxyStats:
    """What the proxy saw (counts since start)."""

    requests: int = 0
    forwarded: int = 0
    """Requests that reached the upstream (the others were closed during their delay)."""
    cancelled_in_delay: int = 0
    cancelled_streaming: int = 0
    """Requests whose client closed the connection while the upstream was streaming."""
    delays_ms: list[float] = field(default_factory=list)
    log: list[ProxyRequest] = field(default_factory=list)
    """Every chat-completion request, in arrival order."""

    def to_json(self) -> ProxyCounters:
        return {
            "requests": self.requests,
            "forwarded": self.forwarded,
            "cancelled_in_delay": self.cancelled_in_delay,
            "cancelled_streaming": self.cancelled_streaming,
        }


class LatencyProxy:
    """The proxy (see the module docstring); use as a context manager or `start`/`stop`.

    Args:
        upstream: the real server's API root, e.g. ``http://127.0.0.1:8080/v1``.
        profile: the injected TTFT distribution.
        seed: seeds the draws (in arrival order).

    Raises:
        ImportError: aiohttp is not installed (names the extra).
    """

    def __init__(self, upstream: str, profile: TailProfile | None = None, seed: int = 0) -> None:
        try:
            import aiohttp  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "the latency proxy needs aiohttp: pip install 'earshot[levers]'"
            ) from exc
        self.upstream = upstream.rstrip("/")
        self.profile = profile or TailProfile()
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._origin = Stopwatch()  # the proxy runs on real time, whatever clock the client uses
        self.label = ""
        """Copied into each `ProxyRequest` (set it to tell runs apart in `stats.log`)."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    @property
    def base_url(self) -> str:
        """The proxy's API root (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LatencyProxy:
        """Serve in a background thread; returns once the socket accepts connections.

        Raises:
            RuntimeError: the server failed to start.
        """
        self._thread = threading.Thread(target=self._serve, name="latency-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None or not self._ready.is_set():
            raise RuntimeError(f"latency proxy failed to start: {self._error}")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10.0)
        self._sock.close()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        import aiohttp
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0)
        ) as client:
            app = web.Application()

            async def handle(request: web.Request) -> web.StreamResponse:
                return await self._handle(request, client)

            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
            await runner.setup()
            site = web.SockSite(runner, self._sock)
            await site.start()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

    async def _handle(self, request: web.Request, client: Any) -> web.StreamResponse:
        import aiohttp
        from aiohttp import web

        path = request.match_info["tail"]
        target = self.upstream.removesuffix("/v1") + "/" + path
        body = await request.read()
        record: ProxyRequest | None = None
        if request.method == "POST" and path.endswith("chat/completions"):
            self.stats.requests += 1
            delay_ms = self.profile.draw_ms(self._rng)
            self.stats.delays_ms.append(delay_ms)
            record = ProxyRequest(self._now_ms(), delay_ms, self.label, last_user=_last_user(body))
            self.stats.log.append(record)
            try:
                await asyncio.sleep(delay_ms / 1000.0)
            except asyncio.CancelledError:
                self.stats.cancelled_in_delay += 1
                record.closed_by_client = True
                raise
            self.stats.forwarded += 1
            record.forwarded_ms = self._now_ms()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "authorization", "accept")
        }
        try:
            upstream = await client.request(request.method, target, data=body, headers=headers)
        except asyncio.CancelledError:
            if record is not None:  # the client closed before the upstream answered
                record.closed_by_client = True
            raise
        except aiohttp.ClientError as exc:
            return web.json_response(
                {"error": {"message": f"latency proxy: upstream {self.upstream} failed: {exc}"}},
                status=502,
            )
        async with upstream:
            response = web.StreamResponse(status=upstream.status)
            content_type = upstream.headers.get("Content-Type")
            if content_type:
                response.headers["Content-Type"] = content_type
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    if record is not None:
                        self._note_chunk(record, chunk)
                    await response.write(chunk)
                await response.write_eof()
            except asyncio.CancelledError:
                self.stats.cancelled_streaming += 1
                if record is not None:
                    record.closed_by_client = True
                raise
            except ConnectionResetError:
                # The client closed the stream (a hedge's loser): closing the upstream request
                # on the way out of `async with` is all that is left to do.
                self.stats.cancelled_streaming += 1
                if record is not None:
                    record.closed_by_client = True
            return response

    def _now_ms(self) -> float:
        return self._origin.elapsed_ms()

    def _note_chunk(self, record: ProxyRequest, chunk: bytes) -> None:
        if record.upstream_first_byte_ms is None:
            record.upstream_first_byte_ms = self._now_ms()
        if record.upstream_first_content_ms is None and _CONTENT.search(chunk):
            record.upstream_first_content_ms = self._now_ms()
