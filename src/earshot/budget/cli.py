"""``earshot budget``: the latency budget model, what-if levers, tails, audio tokens and audits.

Wire-up: ``add_parser(subparsers)`` registers the ``budget`` subcommand on the main parser (with
``func=run`` as its default) and ``run(args)`` executes it, returning the exit status (0 fine,
1 an audited breakdown does not add up, 2 bad input). Without a verb, ``earshot budget``
projects levers onto a preset (``--preset``: published bounds, plus a Monte Carlo tail with
``--simulate``) or onto measured runs (``--from``: resampled turns); the other verbs live in
`earshot.budget.cli_verbs`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from earshot.budget import report
from earshot.budget.audit import Audit, audit
from earshot.budget.chart import write_chart
from earshot.budget.cli_verbs import VERBS, add_json, add_sampling, add_verbs, emit
from earshot.budget.dists import DistributionError, LogNormal
from earshot.budget.levers import LeverError, parse_lever
from earshot.budget.measured import TurnsFileError, load_turns
from earshot.budget.model import Budget, BudgetFileError, load_budget, preset_names
from earshot.budget.montecarlo import (
    PERCENTILES,
    Summary,
    budget_distributions,
    check_samples,
    draw,
    simulate,
)
from earshot.budget.whatif import Step, project_bounds
from earshot.evals.outputs import check_out_file

_EXAMPLES = """\
examples:
  earshot budget presets
  earshot budget --preset realtime-typical --lever vad_silence=200 --lever spec_decode
  earshot budget --preset pipeline-ranges --lever preemptive,mismatch=0.2 --chart what-if.png
  earshot budget --preset pipeline-1.5s --dist llm_ttft=600:2400 --lever hedge=2 --simulate
  earshot budget --from runs/demo --lever vad_silence=300,from=500 --json out.json
  earshot budget levers
  earshot budget audit                 # every preset
  earshot budget audit vendor.yaml --json -
  earshot budget tokens --turns 20 --user-s 5 --agent-s 10 --keep-audio-turns 3
  earshot budget spec --alpha 0.7 --gamma 4 --draft-cost 0.125
  earshot budget hedge --p50 400 --p99 1600 --requests 2
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``earshot budget`` and its verbs on the main CLI's subparsers."""
    p = subparsers.add_parser(
        "budget",
        help="latency budget model and what-if simulator",
        description=(
            "Project TTFAT (end of user speech to first audible agent sample) from a published "
            "budget (--preset) or measured runs (--from), apply levers, and simulate the tail. "
            "Without a verb: print the baseline, each lever's delta per term and the new total."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        metavar="NAME|FILE",
        help="a preset (see `budget presets`) or a budget YAML/JSON",
    )
    source.add_argument(
        "--from",
        dest="from_paths",
        action="append",
        metavar="PATH",
        help="turns.jsonl of an `earshot converse` run, or its directory; repeatable",
    )
    p.add_argument(
        "--lever",
        action="append",
        default=[],
        metavar="SPEC",
        help="NAME[=VALUE][,KEY=VALUE...], applied in order; repeatable (see `budget levers`)",
    )
    p.add_argument("--simulate", action="store_true", help="also run the Monte Carlo tail model")
    p.add_argument(
        "--dist",
        action="append",
        default=[],
        metavar="TERM=P50:P99",
        help="simulate TERM as a lognormal with this p50 and p99 (ms); implies --simulate",
    )
    add_sampling(p)
    add_json(p)
    p.add_argument("--chart", metavar="PNG", help="write a stacked bar chart, baseline vs what-if")
    add_verbs(p.add_subparsers(dest="budget_verb", metavar="VERB"))
    p.set_defaults(func=run)


def check_output_paths(args: argparse.Namespace) -> None:
    """Check ``--json PATH`` and ``--chart PNG`` before any work.

    Raises:
        OutputPathError: a path is a folder, sits under a file, or its folder is not writable.
    """
    target = getattr(args, "json", None)
    if isinstance(target, str) and target != "-":
        check_out_file(Path(target), "--json")
    chart = getattr(args, "chart", None)
    if chart:
        check_out_file(Path(chart), "--chart")


def run(args: argparse.Namespace) -> int:
    """Execute ``earshot budget``; returns the exit status (2 bad input, 1 cannot write)."""
    verb = getattr(args, "budget_verb", None)
    try:
        check_output_paths(args)
        return _run_project(args) if verb is None else VERBS[verb](args)
    except (BudgetFileError, LeverError, DistributionError, TurnsFileError, ValueError) as exc:
        print(f"earshot budget: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # stdout closed by the reader (`| head`): the CLI's own shutdown path handles it
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"earshot budget: error: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _parse_dists(texts: list[str]) -> dict[str, LogNormal]:
    out: dict[str, LogNormal] = {}
    for text in texts:
        term, eq, spec = text.partition("=")
        p50, colon, p99 = spec.partition(":")
        try:
            if not (eq and colon):
                raise ValueError
            out[term.strip()] = LogNormal.from_p50_p99(float(p50), float(p99))
        except ValueError as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise DistributionError(
                f"--dist {text!r}: write TERM=P50:P99 in ms, e.g. llm_ttft=150:600{detail}"
            ) from exc
    return out


@dataclass(slots=True)
class _Projection:
    """What one ``earshot budget --preset/--from`` run computed, ready to print."""

    budget: Budget | None = None
    steps: list[Step] = field(default_factory=list)
    check: Audit | None = None
    summaries: list[Summary] = field(default_factory=list)
    simulation_title: str = ""
    source_line: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def render(self, console: Console) -> None:
        if self.budget is not None and self.check is not None:
            console.print(report.bounds_table(self.budget, self.steps))
            console.print(f"audit: {self.check.verdict()}")
            for note in self.budget.notes:
                console.print(f"• {note}")
        if self.summaries:
            console.print(report.simulation_table(self.simulation_title, self.summaries))
        if self.source_line:
            console.print(self.source_line)
        labelled = self.steps[1:] or self.summaries[1:]
        for step in labelled:
            for note in step.notes:
                console.print(f"• {step.label}: {note}")

    def chart_bars(self) -> list[tuple[str, dict[str, float]]]:
        bars = _bounds_bars(self.steps) if self.steps else []
        if self.summaries:
            bars += [
                ("baseline\nsimulated mean", self.summaries[0].mean_ms),
                ("what-if\nsimulated mean", self.summaries[-1].mean_ms),
            ]
        return bars

    def chart_markers(self) -> dict[str, dict[str, float]]:
        if not self.summaries:
            return {}
        ends = (("baseline", self.summaries[0]), ("what-if", self.summaries[-1]))
        return {
            f"{label}\nsimulated mean": {f"p{p:g}": s.percentiles_ms[p] for p in PERCENTILES}
            for label, s in ends
        }


def _run_project(args: argparse.Namespace) -> int:
    if not args.preset and not args.from_paths:
        raise BudgetFileError(
            "give --preset NAME (one of: "
            + ", ".join(preset_names())
            + ") or --from RUN_DIR/turns.jsonl; see `earshot budget --help`"
        )
    levers = [parse_lever(text) for text in args.lever]
    overrides = _parse_dists(args.dist)
    rng = np.random.default_rng(args.seed)
    out = _Projection()
    sampling = f"{args.samples:,} draws, seed {args.seed}"
    if args.preset:
        budget = load_budget(args.preset)
        out.budget, out.steps, out.check = budget, project_bounds(budget, levers), audit(budget)
        out.data["bounds"] = report.bounds_json(budget, out.steps, out.check)
        if args.simulate or overrides:
            check_samples(args.samples)
            baseline = draw(budget_distributions(budget, overrides), args.samples, rng)
            out.summaries = simulate(baseline, levers, rng)
            out.simulation_title = f"Simulated TTFAT, {budget.name} ({sampling})"
            if any(t.is_range and t.name not in overrides for t in budget.terms):
                out.source_line = report.RANGE_ASSUMPTION
            meta = {"samples": args.samples, "seed": args.seed, "assumption": out.source_line}
            out.data["simulation"] = report.simulation_json(out.summaries, meta)
    else:
        measured = load_turns(args.from_paths)
        turns = measured.measured
        assert turns is not None  # load_turns always returns a measured budget
        check_samples(args.samples)
        unknown = sorted(set(overrides) - set(measured.term_names))
        if unknown:
            raise DistributionError(
                f"--dist names {unknown}; measured terms: {measured.term_names}"
            )
        baseline = measured.bootstrap(rng, args.samples)
        baseline.update(draw(overrides, args.samples, rng))
        out.summaries = simulate(baseline, levers, rng)
        bad = measured.sum_mismatches()
        out.simulation_title = f"Measured TTFAT, {turns.num_turns} turns resampled ({sampling})"
        out.source_line = (
            f"read {', '.join(turns.sources)}: {turns.num_turns} complete turns, "
            f"{turns.skipped} incomplete skipped; "
            + (f"turns {bad} do NOT add up to ttfat_ms" if bad else "terms add up to ttfat_ms")
        )
        meta = {
            "sources": list(turns.sources),
            "turns": turns.num_turns,
            "skipped_incomplete": turns.skipped,
            "turns_not_adding_up": bad,
            "samples": args.samples,
            "seed": args.seed,
        }
        out.data["simulation"] = report.simulation_json(out.summaries, meta)
    emit(args, out.data, out.render)
    if args.chart:
        title = f"TTFAT: {out.budget.title if out.budget else 'measured turns'}"
        write_chart(
            args.chart,
            title,
            out.chart_bars(),
            markers=out.chart_markers(),
            budget_ms=out.budget.budget_ms if out.budget else None,
        )
    return 0


def _bounds_bars(steps: list[Step]) -> list[tuple[str, dict[str, float]]]:
    base, last = steps[0], steps[-1]
    ends = [("", 0)]
    if any(v[0] != v[1] for s in (base, last) for v in s.contributions_ms.values()):
        ends = [(" best", 0), (" worst", 1)]
    bars = []
    for suffix, i in ends:
        for label, step in (("baseline", base), ("what-if", last))[: 2 if len(steps) > 1 else 1]:
            bars.append(
                (label + suffix, {k: float(v[i]) for k, v in step.contributions_ms.items()})
            )
    return bars


def main(argv: list[str] | None = None) -> int:
    """Run ``budget`` standalone (for tests and ``python -m earshot.budget.cli``)."""
    parser = argparse.ArgumentParser(prog="earshot")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
