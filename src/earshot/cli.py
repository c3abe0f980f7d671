"""The `earshot` command line."""

from __future__ import annotations

import argparse
import importlib.resources
import sys
from collections.abc import Sequence
from pathlib import Path

from earshot import __version__
from earshot.stacks import add_model_arguments, model_options

DEMO_CALLER = "demo_caller.wav"


def bundled_data(*parts: str) -> Path:
    """Path of a file bundled in the package's ``data/`` folder."""
    return Path(str(importlib.resources.files("earshot").joinpath("data", *parts)))


def _add_converse(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "converse",
        help="run a streaming voice agent against a recorded caller and time every turn",
        description=(
            "Converse with a recorded caller (any WAV; resampled to 16 kHz mono), end to end: "
            "VAD, end-of-turn, streaming STT, LLM, sentence chunking, streaming TTS, jitter "
            "buffer. Writes conversation.wav (left = caller, right = agent), turns.jsonl, "
            "report.md and latency.png into --out."
        ),
    )
    p.add_argument(
        "input",
        nargs="?",
        help=f"caller recording (default: the bundled demo caller, data/{DEMO_CALLER})",
    )
    p.add_argument("--out", default="out/converse", help="output folder (default: out/converse)")
    p.add_argument("--frame-ms", type=int, default=20, choices=(10, 20, 40), help="frame size")
    p.add_argument("--vad", default="silero", choices=("silero", "webrtc"), help="VAD backend")
    p.add_argument("--vad-threshold", type=float, default=0.5, help="speech probability threshold")
    p.add_argument(
        "--eot-silence-ms",
        type=float,
        default=500.0,
        help="silence after speech that ends a turn (fixed endpointer; default 500)",
    )
    p.add_argument(
        "--endpointer",
        default="fixed",
        choices=("fixed", "smart", "model"),
        help="end-of-turn policy (model: the learned P(end) model, docs/endpointing.md)",
    )
    p.add_argument(
        "--eot-threshold",
        type=float,
        help="model endpointer: P(end) at which the turn ends (default: the calibrated one)",
    )
    p.add_argument("--endpointing-rules", type=Path, help="YAML rules for the smart endpointer")
    p.add_argument(
        "--endpointing-dynamic",
        action="store_true",
        help="smart endpointer: adapt the silence bound to this caller's pauses",
    )
    p.add_argument(
        "--endpointing-text-only",
        action="store_true",
        help="smart endpointer: the transcript alone, without pitch fall / energy decay cues",
    )
    p.add_argument("--min-speech-ms", type=float, default=200.0, help="shortest voiced turn")
    p.add_argument("--jitter-ms", type=float, default=40.0, help="jitter buffer hold (ms)")
    add_model_arguments(p)
    p.add_argument("--budget", type=Path, help="per-term budget file (YAML/JSON)")
    p.add_argument(
        "--budget-preset", default="1.5s", choices=("1.5s", "2.0s"), help="built-in budget"
    )
    p.add_argument(
        "--simulated-clock",
        action="store_true",
        help="virtual time: skip idle waits, charge compute (runs faster than real time)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    b = p.add_argument_group("barge-in")
    b.add_argument("--no-barge-in", action="store_true", help="never interrupt the agent")
    b.add_argument(
        "--min-interruption-ms",
        type=float,
        default=200.0,
        help="user speech during playout that interrupts it (default 200)",
    )
    b.add_argument(
        "--false-interruption-timeout-ms",
        type=float,
        default=2000.0,
        help="no words this long after a barge-in: resume the reply (default 2000)",
    )
    b.add_argument("--backchannels", type=Path, help="YAML list of backchannel words/phrases")
    e = p.add_argument_group("echo (file transport room simulation)")
    e.add_argument(
        "--echo", action="store_true", help="feed the agent's output back into the microphone"
    )
    e.add_argument("--echo-delay-ms", type=float, default=40.0, help="echo path delay")
    e.add_argument("--echo-decay-ms", type=float, default=150.0, help="room tail decay (RT60)")
    e.add_argument("--echo-gain-db", type=float, default=-6.0, help="echo path gain")
    e.add_argument("--noise", type=Path, help="background noise recording mixed into the mic")
    e.add_argument("--noise-dbfs", type=float, default=-45.0, help="background noise level")
    e.add_argument("--aec", action="store_true", help="WebRTC AEC3 on the microphone signal")
    e.add_argument(
        "--aec-warmup-ms",
        type=float,
        default=0.0,
        help="agent playout before barge-in is armed (LiveKit default 3000)",
    )
    p.set_defaults(func=_run_converse)


def _run_converse(args: argparse.Namespace) -> int:
    from earshot.audio.io import AudioFileError
    from earshot.converse import ConverseOptions, EchoOptions, converse
    from earshot.llm.base import LlmError
    from earshot.metrics.budget import load_budget
    from earshot.metrics.report import render_summary_table
    from earshot.metrics.stats import summarize
    from earshot.session.config import SessionConfig
    from earshot.turns.bargein import BargeInConfig, load_backchannels

    try:
        models = model_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack = models.stack
    try:
        opts = ConverseOptions(
            input_path=Path(args.input) if args.input else bundled_data(DEMO_CALLER),
            out_dir=Path(args.out),
            session=SessionConfig(
                frame_ms=args.frame_ms,
                vad_threshold=args.vad_threshold,
                min_speech_ms=args.min_speech_ms,
                jitter_ms=args.jitter_ms,
                aec_warmup_ms=args.aec_warmup_ms,
            ),
            bargein=None
            if args.no_barge_in
            else BargeInConfig(
                min_interruption_ms=args.min_interruption_ms,
                false_interruption_timeout_ms=args.false_interruption_timeout_ms,
                backchannels=load_backchannels(args.backchannels),
            ),
            echo=EchoOptions(
                echo=args.echo,
                delay_ms=args.echo_delay_ms,
                decay_ms=args.echo_decay_ms,
                gain_db=args.echo_gain_db,
                noise_path=args.noise,
                noise_dbfs=args.noise_dbfs,
            )
            if args.echo or args.noise
            else None,
            aec=args.aec,
            vad=args.vad,
            endpointer=args.endpointer,
            eot_silence_ms=args.eot_silence_ms,
            endpointing_rules=args.endpointing_rules,
            endpointing_dynamic=args.endpointing_dynamic,
            endpointing_acoustic=False if args.endpointing_text_only else None,
            eot_threshold=args.eot_threshold,
            stt=stack.stt,
            stt_model=models.stt_model,
            llm=stack.llm,
            llm_options=models.llm_options,
            tts=stack.tts,
            tts_voice=models.tts_voice,
            budget_path=args.budget,
            budget_preset=args.budget_preset,
            simulated_clock=args.simulated_clock,
            quiet=args.quiet,
        )
        result = converse(opts)
    except (AudioFileError, ValueError, LlmError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    console = Console()
    turns = result.state.turns
    console.print(
        render_summary_table(summarize(turns), load_budget(args.budget, preset=args.budget_preset))
    )
    for name, desc in result.components.items():
        console.print(f"  {name:12s} {desc}")
    console.print(f"wrote {result.out_dir}/conversation.wav, turns.jsonl, report.md, latency.png")
    if result.interrupted:
        console.print("interrupted: outputs hold the turns done so far")
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earshot",
        description="Streaming voice agents built around the latency budget, with a latency lab.",
    )
    parser.add_argument("--version", action="version", version=f"earshot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_converse(sub)
    from earshot.budget.cli import add_parser as add_budget

    add_budget(sub)
    from earshot.evals.cli import add_parser as add_eval

    add_eval(sub)
    from earshot.llm.serve import add_parser as add_llm

    add_llm(sub)
    from earshot.server.cli import add_parsers as add_server

    add_server(sub)  # serve, call, loadtest
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
