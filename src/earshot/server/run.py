"""Run the server process: bounded inference pool, the app, a TaskGroup for call tasks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from earshot import shutdown
from earshot.clock import set_inference_executor
from earshot.server.app import build_app
from earshot.server.config import ServerConfig
from earshot.server.rtc import CALL_TASKS_KEY, RUNNING_CALLS_KEY, RunningCalls
from earshot.server.stack import CallStack
from earshot.transports.twilio import TwilioOptions


def pool_size() -> int:
    """Inference pool workers: one per core (model calls are CPU-bound and release the GIL)."""
    return max(1, os.cpu_count() or 1)


@contextlib.asynccontextmanager
async def serving(config: ServerConfig, app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on ``config.host:config.port`` inside this block; yields the base URL.

    Installs the bounded inference pool (`earshot.clock.set_inference_executor`: every
    `earshot.clock.run_blocking` model call runs there, at most `pool_size` at once, while
    the loop's default executor stays free for short jobs such as aiortc's Opus encoding) and
    gives the app the TaskGroup that owns every background call (WebRTC). Leaving the block
    stops accepting, cancels the calls still running and waits for them.

    Raises:
        OSError: the port cannot be bound.
    """
    pool = ThreadPoolExecutor(max_workers=pool_size(), thread_name_prefix="earshot-infer")
    set_inference_executor(pool)
    try:
        async with asyncio.TaskGroup() as tg:
            app[CALL_TASKS_KEY] = tg
            app[RUNNING_CALLS_KEY] = RunningCalls()
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
            await runner.setup()
            try:
                site = web.TCPSite(runner, config.host, config.port)
                await site.start()
                port = config.port
                server = getattr(site, "_server", None)
                if port == 0 and server is not None and server.sockets:
                    port = server.sockets[0].getsockname()[1]
                host = f"[{config.host}]" if ":" in config.host else config.host
                yield f"http://{host}:{port}"
            finally:
                app[RUNNING_CALLS_KEY].cancel_all()
                await runner.cleanup()
    finally:
        set_inference_executor(None)
        pool.shutdown(wait=False, cancel_futures=True)


def serve_app(
    config: ServerConfig, stack: CallStack, twilio: TwilioOptions | None = None
) -> web.Application:
    """The application `serve` runs: `build_app` with ``stack`` and the Twilio settings.

    Args:
        config: the server settings.
        stack: the per-call components.
        twilio: settings of the Twilio Media Streams endpoint (default `TwilioOptions()`).
    """
    from earshot.protocols.routes import TWILIO_OPTIONS_KEY
    from earshot.server.stack_choice import configure_stack

    app = build_app(config)
    configure_stack(app, stack)
    if twilio is not None:
        app[TWILIO_OPTIONS_KEY] = twilio
    return app


def serve(config: ServerConfig, stack: CallStack, twilio: TwilioOptions | None = None) -> int:
    """Serve ``stack``'s calls until Ctrl-C (the app of `serve_app`). Returns the exit status."""
    app = serve_app(config, stack, twilio)

    async def main() -> None:
        async with serving(config, app) as url:
            print(f"earshot serve: open {url}/ (Ctrl-C stops)", flush=True)
            await asyncio.Event().wait()

    try:
        shutdown.run_stoppable(main())  # a second Ctrl-C ends the process at once
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc}")
        return 2
    return 0
