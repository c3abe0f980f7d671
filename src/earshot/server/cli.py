"""``earshot serve``, ``earshot call`` and ``earshot loadtest``: the live-caller commands.

Wire-up: ``add_parsers(subparsers)`` registers the three subcommands on the main parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from earshot.options import number
from earshot.stacks import ModelOptions, add_model_arguments, model_options
from earshot.transports.phone_network import PSTN_RANGE_MS
from earshot.turns.factory import ENDPOINTER_NAMES


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``serve``, ``call`` and ``loadtest``."""
    _add_serve(sub)
    from earshot.server.cli_client import add_client_parsers

    add_client_parsers(sub)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve live callers: a web page, WebSocket and WebRTC endpoints",
        description=(
            "Serve live callers in one process: open the printed URL, press Call and talk. "
            "Each call's turns.jsonl, report.md, latency.png and conversation.wav go into "
            "--out/<call id>/. Binds 127.0.0.1 unless --host says otherwise; another "
            "interface needs --token and --allowed-origins."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    p.add_argument("--token", help="secret every call must present (?token=...)")
    p.add_argument(
        "--allowed-origins",
        help="comma-separated browser origins allowed to call, e.g. https://agent.example.com",
    )
    p.add_argument(
        "--max-calls", type=int, default=8, help="concurrent calls before refusing (default 8)"
    )
    p.add_argument("--out", type=Path, default=Path("out/calls"), help="per-call output folders")
    add_model_arguments(
        p, extra_stacks={"fake": "the shipped fakes (orchestration only, for load tests)"}
    )
    p.add_argument("--frame-ms", type=int, default=20, choices=(10, 20, 40), help="frame size")
    p.add_argument("--eot-silence-ms", type=float, default=500.0, help="end-of-turn silence")
    p.add_argument(
        "--endpointer",
        choices=ENDPOINTER_NAMES,
        default="fixed",
        help=(
            "end-of-turn policy per call: fixed (--eot-silence-ms), smart (rules on the "
            "transcript) or model (the learned end-of-turn model; its language model and the "
            "pause's Whisper decode are loaded once and shared by the calls)"
        ),
    )
    p.add_argument(
        "--pstn-assumed-ms",
        type=number(0.0, 2000.0),
        default=PSTN_RANGE_MS[0],
        help=(
            "Twilio calls: assumed one-way latency of the phone network leg, stated in each "
            "call's report beside the measured terms and never added to them (default "
            f"{PSTN_RANGE_MS[0]:.0f} ms, the low end of the published "
            f"{PSTN_RANGE_MS[0]:.0f}-{PSTN_RANGE_MS[1]:.0f} ms)"
        ),
    )
    p.add_argument("--quiet", action="store_true", help="no per-call log lines")
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from earshot.server.cli_client import server_extra_missing

    hint = server_extra_missing()
    if hint is not None:
        print(f"error: {hint}", file=sys.stderr)
        return 2
    from earshot.server.config import ServerConfig, ServerConfigError, parse_origins
    from earshot.server.run import serve

    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            token=args.token,
            allowed_origins=parse_origins(args.allowed_origins),
            max_calls=args.max_calls,
            out_dir=args.out,
        )
    except ServerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from earshot.llm.base import LlmError
    from earshot.server.stack_choice import FAKE_STACK, make_stack

    fake = args.stack == FAKE_STACK
    try:
        models = None if fake else model_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        stack = make_stack(
            models,
            fake=fake,
            frame_ms=args.frame_ms,
            eot_silence_ms=args.eot_silence_ms,
            endpointer=args.endpointer,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(
            f"earshot serve: {describe_models(models)}, end-pointer {args.endpointer}", flush=True
        )
    preload = getattr(stack, "shared_parts", None)
    if callable(preload):
        try:
            preload()  # the shared models load now, not in the first caller's time
        except (ImportError, ValueError, LlmError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from earshot.transports.twilio import TwilioOptions

    return serve(config, stack, twilio=TwilioOptions(pstn_assumed_ms=args.pstn_assumed_ms))


def describe_models(models: ModelOptions | None) -> str:
    """One line naming the stage backends, e.g. ``stt whisper, llm scripted, tts piper``."""
    if models is None:
        return "fake stack (shipped fakes, orchestration only)"
    s = models.stack
    return f"stt {s.stt}, llm {s.llm}, tts {s.tts}"
