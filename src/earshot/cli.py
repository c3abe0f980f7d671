"""The `earshot` command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from earshot import __version__, shutdown
from earshot.data_files import DEMO_CALLER, bundled_data
from earshot.options import OneLineErrorParser, number
from earshot.outcome import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    RunOutcome,
)

if TYPE_CHECKING:
    from earshot.converse import ConverseResult
    from earshot.metrics.budget import TermBudget


def _add_converse(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from earshot.stacks import add_model_arguments

    ms = number  # every numeric flag is range-checked: finite, and within what it can mean
    p = sub.add_parser(
        "converse",
        help="run a streaming voice agent against a recorded caller and time every turn",
        description=(
            "Converse with a recorded caller (any WAV; resampled to 16 kHz mono), end to end: "
            "VAD, end-of-turn, streaming STT, LLM, sentence chunking, streaming TTS, jitter "
            "buffer. Writes conversation.wav (left = caller, right = agent), turns.jsonl, "
            "report.md and latency.png into --out."
        ),
        epilog=EXIT_STATUS_HELP,
    )
    p.add_argument(
        "input",
        nargs="?",
        help=f"caller recording (default: the bundled demo caller, data/{DEMO_CALLER})",
    )
    p.add_argument("--out", default="out/converse", help="output folder (default: out/converse)")
    p.add_argument("--frame-ms", type=int, default=20, choices=(10, 20, 40), help="frame size")
    p.add_argument("--vad", default="silero", choices=("silero", "webrtc"), help="VAD backend")
    p.add_argument(
        "--vad-threshold",
        type=number(0.0, 1.0, unit="", lo_open=True, hi_open=True),
        default=0.5,
        help="speech probability threshold, in (0, 1)",
    )
    p.add_argument(
        "--eot-silence-ms",
        type=ms(0, 10_000),
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
    p.add_argument(
        "--min-speech-ms", type=ms(0, 10_000), default=200.0, help="shortest voiced turn"
    )
    p.add_argument(
        "--jitter-ms", type=ms(0, 2000), default=40.0, help="jitter buffer hold (ms, 0-2000)"
    )
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
        type=ms(0, 10_000),
        default=200.0,
        help="user speech during playout that interrupts it (default 200)",
    )
    b.add_argument(
        "--false-interruption-timeout-ms",
        type=ms(0, 60_000, lo_open=True),
        default=2000.0,
        help="no words this long after a barge-in: resume the reply (default 2000)",
    )
    b.add_argument("--backchannels", type=Path, help="YAML list of backchannel words/phrases")
    e = p.add_argument_group("echo (file transport room simulation)")
    e.add_argument(
        "--echo", action="store_true", help="feed the agent's output back into the microphone"
    )
    e.add_argument("--echo-delay-ms", type=ms(0, 1000), default=40.0, help="echo path delay")
    e.add_argument(
        "--echo-decay-ms", type=ms(0, 10_000), default=150.0, help="room tail decay (RT60)"
    )
    e.add_argument(
        "--echo-gain-db", type=number(-80, 20, unit="dB"), default=-6.0, help="echo path gain"
    )
    e.add_argument("--noise", type=Path, help="background noise recording mixed into the mic")
    e.add_argument(
        "--noise-dbfs",
        type=number(-120, 0, unit="dBFS"),
        default=-45.0,
        help="background noise level",
    )
    e.add_argument("--aec", action="store_true", help="WebRTC AEC3 on the microphone signal")
    e.add_argument(
        "--aec-warmup-ms",
        type=ms(0, 60_000),
        default=0.0,
        help="agent playout before barge-in is armed (LiveKit default 3000)",
    )
    p.set_defaults(func=_run_converse)


def _run_converse(args: argparse.Namespace) -> int:
    from earshot.audio.io import AudioFileError
    from earshot.converse import ConverseOptions, EchoOptions, converse
    from earshot.llm.base import LlmError
    from earshot.metrics.budget import load_budget
    from earshot.outputs import OutputError
    from earshot.session.config import SessionConfig
    from earshot.stacks import model_options
    from earshot.turns.bargein import BargeInConfig, load_backchannels

    try:
        models = model_options(args)
    except ValueError as exc:
        return _usage_error(str(exc))
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
        shutdown.outputs_written()  # a second Ctrl-C now would only cut the summary short
    except (AudioFileError, OutputError, ValueError, LlmError, ImportError) as exc:
        return _usage_error(str(exc))
    budget = load_budget(args.budget, preset=args.budget_preset)
    outcome = RunOutcome.of(
        result.state.turns,
        stopped_by=shutdown.stopped_by() if result.interrupted else None,
        output_errors=result.output_errors,
    )
    _print_converse_summary(result, outcome, budget)
    return outcome.exit_code


def _print_converse_summary(
    result: ConverseResult, outcome: RunOutcome, budget: TermBudget
) -> None:
    """The terminal end of a converse run: table, components, files, and the last line."""
    from rich.console import Console

    from earshot.metrics.report import render_summary_table
    from earshot.metrics.stats import summarize
    from earshot.safe_text import printable

    console = Console()

    def say(text: str) -> None:
        console.print(printable(text), markup=False, highlight=False, soft_wrap=True)

    console.print(render_summary_table(summarize(result.state.turns), budget))
    for name, desc in result.components.items():
        note = outcome.stage_note(name)
        say(f"{name}: {desc}" + (f" — {note}" if note else ""))
    folder = result.folder
    if folder is not None and folder.earlier is not None:
        say(folder.earlier)
    if folder is not None and folder.written:
        say(f"wrote {result.out_dir}/: {', '.join(folder.written)}")
    for line in outcome.detail_lines():
        say(line)
    say(outcome.last_line())


def _usage_error(message: str) -> int:
    from earshot.safe_text import printable

    print(f"error: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = OneLineErrorParser(
        prog="earshot",
        description="Streaming voice agents built around the latency budget, with a latency lab.",
        epilog=EXIT_STATUS_HELP,
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
    """Run ``earshot``; returns the exit status (see `earshot.outcome`).

    One shutdown path: SIGTERM is handled like Ctrl-C (`earshot.shutdown`); a Ctrl-C that a
    command did not handle itself (during imports, model loading, or a second one while the
    outputs are written) prints one line, not a traceback; a closed output pipe exits quietly.
    """
    try:
        with shutdown.sigterm_as_sigint():
            parser = build_parser()
            args = parser.parse_args(argv)
            func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
            if func is None:
                parser.print_help()
                return EXIT_USAGE
            status = int(func(args))
            shutdown.outputs_written()
            sys.stdout.flush()  # inside the guard: a closed pipe surfaces here, not at exit
            return status
    except KeyboardInterrupt:
        how = shutdown.stopped_by()
        _quiet_print(f"earshot: stopped by {'Ctrl-C' if how == 'SIGINT' else how}")
        return EXIT_SIGTERM if how == "SIGTERM" else EXIT_SIGINT
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if os.environ.get("EARSHOT_DEBUG"):
            raise
        _quiet_print(f"earshot: internal error (a bug, please report it): {_where(exc)}")
        return EXIT_INTERNAL


def _where(exc: BaseException) -> str:
    """``Type: message at file.py:line`` of the innermost frame, redacted, on one line."""
    import traceback

    from earshot.safe_text import printable

    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return printable(f"{type(exc).__name__}: {exc}{at}; set EARSHOT_DEBUG=1 for the traceback")


def _quiet_print(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr)


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
