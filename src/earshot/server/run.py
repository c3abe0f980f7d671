"""Run the server process: bounded inference pool, the app, graceful shutdown on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from earshot.server.app import ServerConfig, build_app


def pool_size() -> int:
    """Inference pool workers: one per core (model calls are CPU-bound and release the GIL)."""
    return max(1, os.cpu_count() or 1)


async def start_server(config: ServerConfig, app: web.Application) -> web.AppRunner:
    """Start ``app`` on ``config.host:config.port`` and install the bounded inference pool
    as the loop's default executor (so `earshot.clock.run_blocking` runs there).

    Returns:
        The runner; ``await runner.cleanup()`` stops the server.

    Raises:
        OSError: the port cannot be bound (the message names it).
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=pool_size(), thread_name_prefix="earshot-infer")
    )
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    return runner


def serve(
    config: ServerConfig,
    *,
    stack: str = "embedded",
    frame_ms: int = 20,
    eot_silence_ms: float = 500.0,
    quiet: bool = False,
) -> int:
    """Serve until Ctrl-C. Returns the exit status."""
    app = build_app(config)
    from earshot.server.routes import configure_stack

    configure_stack(app, stack=stack, frame_ms=frame_ms, eot_silence_ms=eot_silence_ms,
                    quiet=quiet)

    async def main() -> None:
        runner = await start_server(config, app)
        print(f"earshot serve: open {config.base_url}/ (Ctrl-C stops)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc}")
        return 2
    return 0
