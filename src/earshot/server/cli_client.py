"""``earshot call`` and ``earshot loadtest``: callers for a running ``earshot serve``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from earshot import shutdown
from earshot.server.client import NetConditions


def server_extra_missing() -> str | None:
    """The install hint when the server's packages are missing, else None."""
    import importlib.util

    missing = [m for m in ("aiohttp", "aiortc", "av") if importlib.util.find_spec(m) is None]
    if missing:
        return f"the live-caller commands need {', '.join(missing)}: pip install 'earshot[server]'"
    return None


def ws_url(url: str, token: str | None = None) -> str:
    """``http://host:port`` (the page's address) or ``ws://host:port/ws`` → the WebSocket URL.

    Raises:
        ValueError: not an http(s) or ws(s) URL.
    """
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a server URL: {url!r} (e.g. http://127.0.0.1:8765)")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    query = parts.query
    if token:
        query = f"{query}&token={token}" if query else f"token={token}"
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def _add_net(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated network (both directions)")
    g.add_argument("--net-delay-ms", type=float, default=0.0, help="one-way delay (ms)")
    g.add_argument("--net-jitter-ms", type=float, default=0.0, help="extra uniform delay (ms)")
    g.add_argument("--net-loss", type=float, default=0.0, help="audio frame loss (0-1)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    p.add_argument("--codec", default="pcm16", choices=("pcm16", "opus"), help="audio codec")
    p.add_argument("--token", help="the server's --token")


def add_client_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``call`` and ``loadtest``."""
    p = sub.add_parser(
        "call",
        help="call an earshot server with a recording, in real time, over WebSocket",
        description=(
            "Stream a recording to `earshot serve` in real time over WebSocket, with simulated "
            "network conditions, play the agent back (recorded at the time it plays) and "
            "write conversation.wav, turns.jsonl, report.md and latency.png into --out, "
            "measured from the caller's side."
        ),
    )
    p.add_argument("url", help="server address, e.g. http://127.0.0.1:8765")
    p.add_argument("caller", type=Path, help="caller recording (any WAV; 16 kHz mono used)")
    p.add_argument("--out", type=Path, default=Path("out/call"), help="output folder")
    p.add_argument("--lead-ms", type=float, default=40.0, help="client playout delay (ms)")
    _add_net(p)
    p.set_defaults(func=_run_call)

    lt = sub.add_parser(
        "loadtest",
        help="many concurrent callers against an earshot server",
        description=(
            "Run N concurrent WebSocket callers for S seconds each (the recording looped) and "
            "report TTFAT p50/p95/p99, late frames, refused calls and the server's CPU and "
            "memory (from its /healthz)."
        ),
    )
    lt.add_argument("url", help="server address, e.g. http://127.0.0.1:8765")
    lt.add_argument("--calls", type=int, default=4, help="concurrent callers")
    lt.add_argument("--duration-s", type=float, default=30.0, help="seconds of audio per call")
    lt.add_argument("--caller", type=Path, help="recording to loop (default: the demo caller)")
    lt.add_argument("--ramp-s", type=float, default=1.0, help="spread call starts over this")
    lt.add_argument("--json", type=Path, help="also write the results as JSON here")
    _add_net(lt)
    lt.set_defaults(func=_run_loadtest)


def _net(args: argparse.Namespace) -> NetConditions:
    return NetConditions(args.net_delay_ms, args.net_jitter_ms, args.net_loss, args.seed)


def _run_call(args: argparse.Namespace) -> int:
    if (hint := server_extra_missing()) is not None:
        print(f"error: {hint}", file=sys.stderr)
        return 2
    import aiohttp
    from rich.console import Console

    from earshot.audio.io import AudioFileError
    from earshot.clock import SystemClock
    from earshot.metrics.budget import load_budget
    from earshot.metrics.report import render_summary_table
    from earshot.metrics.stats import summarize
    from earshot.server.caller_outputs import write_caller_outputs
    from earshot.server.client import CallClient
    from earshot.transports.file import load_caller

    console = Console(stderr=True)
    try:
        net = _net(args)
        url = ws_url(args.url, args.token)
        caller = load_caller(args.caller)
    except (ValueError, AudioFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(msg: object) -> None:
        kind = getattr(msg, "type", "")
        if kind == "transcript" and getattr(msg, "final", False):
            console.print(f"[bold]caller:[/bold] {msg.text}")  # type: ignore[attr-defined]
        elif kind == "turn":
            rec = msg.record  # type: ignore[attr-defined]
            console.print(
                f"[blue]agent:[/blue] {rec.get('agent_text', '')}  "
                f"[dim](TTFAT {rec.get('ttfat_ms')} ms)[/dim]"
            )

    client = CallClient(
        url, SystemClock(), net, codec=args.codec, lead_ms=args.lead_ms, on_event=show
    )
    try:
        result = shutdown.run_stoppable(client.run(caller))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"error: cannot call {url}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if result.error is not None:
        print(f"error: the server ended the call: {result.error}", file=sys.stderr)
        if not result.turns:
            return 1
    turns = write_caller_outputs(args.out, result, url=url, caller_path=str(args.caller), net=net)
    console.print(render_summary_table(summarize(turns), load_budget(None, preset="1.5s")))
    console.print(
        f"wrote {args.out}/conversation.wav, turns.jsonl, report.md, latency.png "
        f"(server's copy: {result.out_dir})"
    )
    return 0 if result.error is None else 1


def _run_loadtest(args: argparse.Namespace) -> int:
    if (hint := server_extra_missing()) is not None:
        print(f"error: {hint}", file=sys.stderr)
        return 2
    from earshot.server.loadtest import LoadTestOptions, print_results, run_loadtest

    try:
        opts = LoadTestOptions(
            url=ws_url(args.url, args.token),
            calls=args.calls,
            duration_s=args.duration_s,
            caller=args.caller,
            ramp_s=args.ramp_s,
            net=_net(args),
            codec=args.codec,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        results = shutdown.run_stoppable(run_loadtest(opts))
    except KeyboardInterrupt:
        return 130
    print_results(results)
    if args.json is not None:
        from earshot.audio.io import write_text_atomic

        write_text_atomic(args.json, results.model_dump_json(indent=2))
    return 0 if results.completed_calls > 0 else 1
