"""The ``earshot budget`` verbs besides the projection: presets, levers, audit, tokens, spec, hedge.

Also the output helpers every verb shares (``--json``, ``--samples/--seed``, the console).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console

from earshot.audio.io import write_text_atomic
from earshot.budget import report
from earshot.budget.audit import audit
from earshot.budget.dists import (
    LogNormal,
    expected_tokens_per_step,
    hedged_quantile,
    speculative_speedup,
)
from earshot.budget.levers import LEVERS, lever_data
from earshot.budget.model import load_budget, load_preset, preset_names
from earshot.budget.montecarlo import (
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    PERCENTILES,
    SampleMode,
    check_samples,
    tokens_per_step,
)
from earshot.budget.tokens import (
    Conversation,
    Prices,
    Representation,
    audio_tokens,
    conversation_tokens,
    default_text_tokens_per_s,
    token_data,
)


def add_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verbs on ``earshot budget``'s subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    v = verbs.add_parser("presets", help="list the shipped presets", description="List presets.")
    v.add_argument("--terms", action="store_true", help="also list the term vocabulary")
    add_json(v)

    v = verbs.add_parser("levers", help="list the levers", description="List the levers.")
    add_json(v)

    v = verbs.add_parser(
        "audit",
        help="check that a breakdown's terms add up to its stated total",
        description=(
            "Check published breakdowns: do the terms sum to the stated total? Exit status 1 "
            "if any does not. A file holds 'terms' (list of {name, ms, label, cite} or a "
            "mapping name → ms, ms a number or [low, high]) and 'stated_total_ms'."
        ),
        formatter_class=raw,
    )
    v.add_argument("breakdowns", nargs="*", metavar="FILE|PRESET", help="default: every preset")
    v.add_argument(
        "--tolerance-ms", type=float, help="allowed |sum − stated| (default: the file's precision)"
    )
    add_json(v)

    v = verbs.add_parser(
        "tokens",
        help="audio tokens and cost per turn and over a conversation",
        description=(
            "Audio tokens = frame rate × codebooks × seconds (§39.4.1), per turn and over a "
            "conversation whose context grows, against the same conversation as text and "
            "with older turns summarized to text. Prices are USD per million tokens."
        ),
    )
    v.add_argument("--tokenizer", default="gpt-4o-realtime", help="gpt-4o-realtime|speechtokenizer")
    v.add_argument("--frame-rate-hz", type=float, help="override the tokenizer's frame rate")
    v.add_argument("--codebooks", type=int, help="override the tokenizer's codebooks per frame")
    v.add_argument("--turns", type=int, default=10, help="user turns (default 10)")
    v.add_argument("--user-s", type=float, default=5.0, help="user speech per turn, s (default 5)")
    v.add_argument(
        "--agent-s", type=float, default=10.0, help="agent speech per turn, s (default 10)"
    )
    v.add_argument(
        "--system-tokens", type=float, default=500.0, help="system prompt tokens (default 500)"
    )
    v.add_argument(
        "--text-tokens-per-s",
        type=float,
        default=default_text_tokens_per_s(),
        help=f"text tokens per s of speech (default {default_text_tokens_per_s():g}: midpoint "
        "of 5–15, §39.4.1)",
    )
    v.add_argument(
        "--keep-audio-turns", type=int, help="summarize turns older than the last K to text"
    )
    v.add_argument("--summary-tokens", type=float, help="text tokens per summarized turn")
    for name in ("audio-in", "audio-out", "text-in", "text-out"):
        v.add_argument(f"--price-{name}", type=float, metavar="USD", help="USD per 1M tokens")
    v.add_argument(
        "--cached-discount",
        type=float,
        default=float(token_data()["cached_input_discount"]["value"]),
        help="share cached input saves (default 0.5, §39.4.1)",
    )
    v.add_argument("--prefill-ms-per-token", type=float, help="show prefill ms per turn")
    add_json(v)

    example = lever_data()["speculative_example"]
    v = verbs.add_parser(
        "spec",
        help="speculative decoding: closed form against simulation",
        description="E[tokens/step] = (1 − α^(γ+1))/(1 − α); speed-up E/(1 + γ·c) (§39.4.6).",
    )
    v.add_argument("--alpha", type=float, default=example["alpha"], help="acceptance rate α")
    v.add_argument("--gamma", type=int, default=example["gamma"], help="draft tokens per step γ")
    v.add_argument(
        "--draft-cost",
        type=float,
        default=example["draft_cost_ratio"],
        help="draft-to-target cost ratio c",
    )
    add_sampling(v)
    add_json(v)

    v = verbs.add_parser(
        "hedge",
        help="LLM hedging on a TTFT distribution: closed form against simulation",
        description="First of N iid requests: CDF 1 − (1 − F)^N (T. Pan: cuts P99, not the mean).",
    )
    v.add_argument("--p50", type=float, required=True, help="single-request TTFT p50, ms")
    v.add_argument("--p99", type=float, required=True, help="single-request TTFT p99, ms")
    v.add_argument("--requests", type=int, default=2, help="parallel requests N (default 2)")
    add_sampling(v)
    add_json(v)


def add_sampling(p: argparse.ArgumentParser) -> None:
    """``--samples`` and ``--seed`` for a Monte Carlo verb."""
    p.add_argument(
        "--samples", type=int, default=DEFAULT_SAMPLES, help=f"draws (default {DEFAULT_SAMPLES})"
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 0)")


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json [PATH]``: alone or ``-`` prints only JSON; a path is written atomically."""
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write JSON to PATH, or alone / '-' to print only JSON",
    )


def console_for_output() -> Console:
    """A console that prints text as is (no markup); 160 columns when not a terminal."""
    console = Console(markup=False)
    if not console.is_terminal:
        console = Console(markup=False, width=160)
    return console


def emit(args: argparse.Namespace, data: dict[str, Any], render: Callable[[Console], None]) -> None:
    """Print tables (unless ``--json -``) and write JSON where asked."""
    target = getattr(args, "json", None)
    if target == "-":
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    render(console_for_output())
    if target:
        write_text_atomic(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def run_presets(args: argparse.Namespace) -> int:
    budgets = [load_preset(name) for name in preset_names()]
    data = {"presets": [report.budget_json(b) for b in budgets]}

    def render(console: Console) -> None:
        console.print(report.presets_table(budgets))
        if args.terms:
            console.print(report.terms_table())

    emit(args, data, render)
    return 0


def run_levers(args: argparse.Namespace) -> int:
    data = {
        "levers": [
            {"name": d.name, "usage": d.usage, "summary": d.summary, "cite": d.cite}
            for d in LEVERS.values()
        ]
    }
    emit(args, data, lambda c: c.print(report.levers_table()))
    return 0


def run_audit(args: argparse.Namespace) -> int:
    names = args.breakdowns or preset_names()
    checks = [audit(load_budget(name), args.tolerance_ms) for name in names]
    data = {"audits": [report.audit_json(c) for c in checks]}
    emit(args, data, lambda c: c.print(report.audit_table(checks)))
    return 1 if any(c.adds_up is False for c in checks) else 0


def run_tokens(args: argparse.Namespace) -> int:
    tokenizers = token_data()["tokenizers"]
    if args.tokenizer not in tokenizers:
        raise ValueError(f"--tokenizer {args.tokenizer!r}: one of {', '.join(tokenizers)}")
    entry = tokenizers[args.tokenizer]
    rate = args.frame_rate_hz if args.frame_rate_hz is not None else float(entry["frame_rate_hz"])
    codebooks = args.codebooks if args.codebooks is not None else int(entry["codebooks"])
    per_s = audio_tokens(rate, codebooks, 1.0)
    conv = Conversation(
        turns=args.turns,
        user_s=args.user_s,
        agent_s=args.agent_s,
        system_tokens=args.system_tokens,
        audio_tokens_per_s=per_s,
        text_tokens_per_s=args.text_tokens_per_s,
        keep_audio_turns=args.keep_audio_turns or 0,
        summary_tokens_per_turn=args.summary_tokens,
    )
    prices = _prices(args)
    reps: list[Representation] = ["audio"]
    reps += ["summarized"] if args.keep_audio_turns is not None else []
    reps.append("text")
    results = [conversation_tokens(conv, rep, prices) for rep in reps]
    audio, text = results[0], results[-1]
    ratio = audio.input_total / text.input_total if text.input_total else float("inf")
    data: dict[str, Any] = {
        "tokenizer": {"name": args.tokenizer, "frame_rate_hz": rate, "codebooks": codebooks},
        "audio_tokens_per_s": per_s,
        "per_turn_tokens": {
            "user_audio": audio_tokens(rate, codebooks, args.user_s),
            "agent_audio": audio_tokens(rate, codebooks, args.agent_s),
        },
        "minutes": conv.minutes,
        "representations": [
            {
                "representation": r.representation,
                "input_tokens": r.input_total,
                "output_tokens": r.output_total,
                "cost_usd": r.cost_usd,
                "cost_per_minute_usd": r.cost_per_minute_usd,
                "turns": [
                    {
                        "turn": t.turn,
                        "input": t.input_total,
                        "cached": t.cached_audio + t.cached_text,
                        "output": t.output,
                        "cost_usd": t.cost_usd,
                    }
                    for t in r.turns
                ],
            }
            for r in results
        ],
        "audio_to_text_input_ratio": ratio,
    }

    def render(console: Console) -> None:
        console.print(
            f"{args.tokenizer}: {rate:g} Hz × {codebooks} codebooks = {per_s:g} tokens/s; a "
            f"{args.user_s:g} s user turn = {data['per_turn_tokens']['user_audio']:,.0f} tokens, a "
            f"{args.agent_s:g} s reply = {data['per_turn_tokens']['agent_audio']:,.0f} tokens"
        )
        console.print(report.tokens_table(results, args.prefill_ms_per_token))
        for r in results:
            cost = r.cost_per_minute_usd
            console.print(
                f"{r.representation}: {r.input_total:,.0f} input + {r.output_total:,.0f} output "
                f"tokens over {conv.minutes:g} min"
                + ("" if cost is None else f", USD {cost:.4f}/min")
            )
        console.print(f"audio input is {ratio:.1f}× the text input for the same conversation")

    emit(args, data, render)
    return 0


def _prices(args: argparse.Namespace) -> Prices | None:
    given = [args.price_audio_in, args.price_audio_out, args.price_text_in, args.price_text_out]
    if all(p is None for p in given):
        return None
    if any(p is None for p in given):
        raise ValueError(
            "give all four prices (--price-audio-in/-audio-out/-text-in/-text-out), or none"
        )
    if not 0 <= args.cached_discount <= 1:
        raise ValueError("--cached-discount is a share in [0, 1], e.g. 0.5")
    return Prices(
        audio_in=args.price_audio_in,
        audio_out=args.price_audio_out,
        text_in=args.price_text_in,
        text_out=args.price_text_out,
        cached_discount=args.cached_discount,
    )


def run_spec(args: argparse.Namespace) -> int:
    check_samples(args.samples)
    closed = expected_tokens_per_step(args.alpha, args.gamma)
    speedup = speculative_speedup(args.alpha, args.gamma, args.draft_cost)
    rng = np.random.default_rng(args.seed)
    draws = tokens_per_step(args.alpha, args.gamma, args.samples, rng)
    mean = float(draws.mean())
    se = float(draws.std(ddof=1) / np.sqrt(args.samples))
    example = lever_data()["speculative_example"]
    data = {
        "alpha": args.alpha,
        "gamma": args.gamma,
        "draft_cost_ratio": args.draft_cost,
        "expected_tokens_per_step": closed,
        "per_token_latency_ratio": 1.0 / speedup,
        "speedup": speedup,
        "simulated_tokens_per_step": mean,
        "simulated_standard_error": se,
        "samples": args.samples,
        "seed": args.seed,
    }
    is_example = (args.alpha, args.gamma, args.draft_cost) == (
        example["alpha"],
        example["gamma"],
        example["draft_cost_ratio"],
    )

    def render(console: Console) -> None:
        console.print(
            f"α={args.alpha:g}, γ={args.gamma}, c={args.draft_cost:g}: E[tokens/step] = "
            f"(1 − α^(γ+1))/(1 − α) = {closed:.4f}; simulated {mean:.4f} ± {se:.4f} "
            f"({args.samples:,} steps, seed {args.seed})"
        )
        console.print(
            f"per-token latency = (t_target + γ·t_draft)/E = {1 / speedup:.4f} × t_target "
            f"→ speed-up {speedup:.3f}×"
        )
        if is_example:
            console.print(
                f"§39.4.6 prints {example['stated_tokens_per_step']} tokens for this example; "
                f"the formula gives {closed:.4f}."
            )

    emit(args, data, render)
    return 0


def run_hedge(args: argparse.Namespace) -> int:
    check_samples(args.samples)
    if args.requests < 1:
        raise ValueError("--requests: send at least one request")
    dist = LogNormal.from_p50_p99(args.p50, args.p99)
    rng = np.random.default_rng(args.seed)
    single = dist.sample(rng, args.samples)
    hedged = SampleMode(rng, args.samples).hedge(single, args.requests)
    rows = {
        f"p{p:g}": {
            "single_ms": dist.ppf(p / 100),
            "hedged_closed_form_ms": hedged_quantile(dist, p / 100, args.requests),
            "hedged_simulated_ms": float(np.percentile(hedged, p)),
        }
        for p in PERCENTILES
    }
    data = {"p50_ms": args.p50, "p99_ms": args.p99, "requests": args.requests, "quantiles": rows}

    def render(console: Console) -> None:
        console.print(
            f"TTFT lognormal(p50={args.p50:g}, p99={args.p99:g}); first of {args.requests} "
            "requests: CDF 1 − (1 − F)^N"
        )
        for name, r in rows.items():
            console.print(
                f"{name}: single {r['single_ms']:.1f} ms → hedged {r['hedged_closed_form_ms']:.1f} "
                f"ms (closed form), {r['hedged_simulated_ms']:.1f} ms (simulated)"
            )

    emit(args, data, render)
    return 0


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "presets": run_presets,
    "levers": run_levers,
    "audit": run_audit,
    "tokens": run_tokens,
    "spec": run_spec,
    "hedge": run_hedge,
}
"""Verb name → handler returning the exit status."""
