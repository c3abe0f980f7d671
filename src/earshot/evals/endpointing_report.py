"""Signal AUCs, the goal verdict, tables and the chart of `earshot eval endpointing`."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from earshot.evals.endpointing_trials import (
    FAST_REFERENCE_MS,
    LATE_MS,
    MISSED_AFTER_MS,
    REFERENCE_FIXED_MS,
)
from earshot.metrics.stats import auc

if TYPE_CHECKING:
    from rich.table import Table

    from earshot.evals.endpointing_model import EndpointingRun

SIGNALS: tuple[str, ...] = (
    "lm_logit",
    "pitch_final_z",
    "pitch_slope_st_per_s",
    "energy_final_rel",
    "log_segment_ms",
    "p_end_at_start",
)
"""Per-pause signals whose AUC is reported; ``p_end_at_start`` is the model's combined score."""


def signal_aucs(
    pauses: Iterable[dict[str, Any]], orientation: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """AUC of each signal at telling true ends from mid-turn pauses.

    Args:
        pauses: labelled pause records (``earshot.evals.endpointing_lanes.pause_records``),
            each with ``features`` and, for the combined score, ``p_end_at_start``.
        orientation: +1 where a higher value means "end", −1 where lower does, as fixed on the
            calibration split (the model file's); never re-oriented on the data measured.

    Returns:
        ``{signal: {"auc", "n_end", "n_mid", "orientation"}}`` over pauses where it exists.
    """
    rows = list(pauses)
    out: dict[str, dict[str, Any]] = {}
    for name in SIGNALS:
        sign = orientation.get(name, 1.0)
        ends: list[float] = []
        mids: list[float] = []
        for r in rows:
            v = r.get(name) if name == "p_end_at_start" else r["features"].get(name)
            if v is None:
                continue
            (ends if r["label"] == "end" else mids).append(sign * float(v))
        a = auc(ends, mids)
        out[name] = {
            "auc": None if a is None else round(a, 3),
            "n_end": len(ends),
            "n_mid": len(mids),
            "orientation": sign,
        }
    return out


def goal_verdicts(
    summary: dict[str, dict[str, Any]], labels: Sequence[str], vad: str
) -> list[dict[str, Any]]:
    """Per model policy and per condition group (quiet, noise): no more false cut-offs per
    turn than fixed `REFERENCE_FIXED_MS` at a median delay no greater than fixed
    `FAST_REFERENCE_MS`'s. ``met`` is None when a delay is missing."""
    slow = f"fixed {REFERENCE_FIXED_MS:g} ms · {vad}"
    fast = f"fixed {FAST_REFERENCE_MS:g} ms · {vad}"
    verdicts: list[dict[str, Any]] = []
    if slow not in summary or fast not in summary:
        return verdicts
    for label in labels:
        if not label.startswith("model"):
            continue
        for group in ("quiet", "noise"):
            s, f_slow, f_fast = summary[label][group], summary[slow][group], summary[fast][group]
            if not s["turns"]:
                continue
            p50, fast_p50 = s["delay"]["p50_ms"], f_fast["delay"]["p50_ms"]
            met = None
            if p50 is not None and fast_p50 is not None:
                met = (
                    s["false_cutoffs_per_turn"] <= f_slow["false_cutoffs_per_turn"]
                    and p50 <= fast_p50
                )
            verdicts.append(
                {
                    "policy": label,
                    "group": group,
                    "cutoffs_per_turn": s["false_cutoffs_per_turn"],
                    "fixed_500_cutoffs_per_turn": f_slow["false_cutoffs_per_turn"],
                    "delay_p50_ms": p50,
                    "fixed_300_delay_p50_ms": fast_p50,
                    "met": met,
                }
            )
    return verdicts


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def render_tables(run: EndpointingRun) -> list[Table]:
    """The overall table (quiet vs noise), the AUC table and the compute table."""
    from rich.table import Table

    status = " — INTERRUPTED, partial" if run.interrupted else ""
    o = run.options
    overall = Table(
        title=f"eval endpointing ({o.pauses} pauses, split {o.split}): {len(run.turns)} turns "
        f"from {run.planned} trials{status}",
        caption="cut-offs/turn: ends of turn decided inside the turn (every one counts); delay: "
        f"end of turn − true end of speech (policy compute included); missed: none within "
        f"{MISSED_AFTER_MS / 1000:g} s; late: > {LATE_MS / 1000:g} s",
    )
    overall.add_column("configuration", no_wrap=True)
    for group in ("quiet", "noise"):
        overall.add_column(f"{group}: cut-offs/turn", justify="right")
        overall.add_column(f"{group}: delay p50 / p95 ms", justify="right")
        overall.add_column(f"{group}: missed / late", justify="right")
    for config in run.configs:
        if config.endpointer.observe:
            continue
        cells: list[str] = []
        for group in ("quiet", "noise"):
            s = run.summary[config.label][group]
            d = s["delay"]
            cells += [
                f"{s['false_cutoffs_per_turn']:.2f}" if s["turns"] else "n/a",
                f"{_ms(d['p50_ms'])} / {_ms(d['p95_ms'])}",
                f"{s['missed']}/{s['turns']} / {s['late']}" if s["turns"] else "n/a",
            ]
        overall.add_row(config.label, *cells)
    tables = [overall]
    if run.aucs:
        t = Table(title="AUC at telling true ends from mid-turn pauses (0.5 = chance)")
        t.add_column("signal", no_wrap=True)
        for group in run.aucs:
            t.add_column(f"{group}: AUC (ends/mids)", justify="right")
        for name in SIGNALS:
            row = []
            for group in run.aucs:
                a = run.aucs[group][name]
                cell = "n/a" if a["auc"] is None else f"{a['auc']:.2f}"
                row.append(f"{cell} ({a['n_end']}/{a['n_mid']})")
            t.add_row(name, *row)
        tables.append(t)
    if run.compute:
        t = Table(title="policy compute per decision (ms, measured on this machine)")
        t.add_column("stage")
        t.add_column("n", justify="right")
        t.add_column("p50", justify="right")
        t.add_column("p95", justify="right")
        for stage, c in run.compute.items():
            t.add_row(stage, str(c["n"]), _ms(c["p50_ms"]), _ms(c["p95_ms"]))
        tables.append(t)
    if run.cv.get("groups"):
        tables.append(render_cv_table(run.cv))
    return tables


def goal_lines(run: EndpointingRun) -> list[str]:
    """One line per model policy and condition group: the goal, MET or NOT MET."""
    lines = []
    for v in run.verdicts:
        verdict = {True: "MET", False: "NOT MET", None: "n/a"}[v["met"]]
        lines.append(
            f"goal ({v['policy']}, {v['group']}): cut-offs/turn {v['cutoffs_per_turn']:.2f} ≤ "
            f"fixed {REFERENCE_FIXED_MS:g} ms {v['fixed_500_cutoffs_per_turn']:.2f}, and delay "
            f"p50 {_ms(v['delay_p50_ms'])} ≤ fixed {FAST_REFERENCE_MS:g} ms "
            f"{_ms(v['fixed_300_delay_p50_ms'])} ms: {verdict}"
        )
    if run.cv.get("error"):
        lines.append(f"cross-validation: not run ({run.cv['error']})")
    for group, g in run.cv.get("groups", {}).items():
        if group == "all" or not g:
            continue
        m, f5, f3 = g["model"], g["fixed 500"], g["fixed 300"]
        met = (
            m["cutoffs_per_turn"][0] <= f5["cutoffs_per_turn"][0]
            and m["p50_ms"][0] <= (f3["p50_ms"][0])
        )
        lines.append(
            f"goal (cross-validated model, {group}, {g['turns']} turns): cut-offs/turn "
            f"{m['cutoffs_per_turn'][0]:.2f} ≤ fixed {REFERENCE_FIXED_MS:g} ms "
            f"{f5['cutoffs_per_turn'][0]:.2f}, and delay p50 {m['p50_ms'][0]:.0f} ≤ fixed "
            f"{FAST_REFERENCE_MS:g} ms {f3['p50_ms'][0]:.0f} ms: {'MET' if met else 'NOT MET'} "
            f"(in {g.get('goal_share', 0):.0%} of bootstrap resamples)"
        )
    return lines


def tables_text(run: EndpointingRun, width: int = 170) -> str:
    """`render_tables` and `goal_lines` as plain text (what ``endpointing.txt`` holds)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), record=True, width=width, color_system=None)
    for table in render_tables(run):
        console.print(table)
    for line in goal_lines(run):
        console.print(line)
    return console.export_text()


def plot_results(path: str | os.PathLike[str], run: EndpointingRun) -> None:
    """Delay p50 against false cut-offs per turn: the fixed-threshold curve joined, each other
    policy a filled point; quiet and noise-mixed side by side; written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from earshot.audio.io import save_figure_atomic

    fig = Figure(figsize=(12.0, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colours = ["#e6550d", "#31a354", "#756bb1", "#de2d26", "#636363", "#3182bd"]
    for ax, group in zip(axes, ("quiet", "noise"), strict=True):
        curve: list[tuple[float, float]] = []
        k = 0
        for config in run.configs:
            s = run.summary.get(config.label, {}).get(group)
            if config.endpointer.observe or not s or s["delay"]["p50_ms"] is None:
                continue
            x, y = s["false_cutoffs_per_turn"], s["delay"]["p50_ms"]
            if config.endpointer.kind == "fixed":
                curve.append((x, y))
                ax.annotate(
                    f"{config.endpointer.silence_ms:g}",
                    (x, y),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize=7,
                )
                continue
            colour = colours[k % len(colours)]
            k += 1
            ax.plot([x], [y], "o", color=colour, ms=9, label=config.endpointer.label)
        if curve:
            xs, ys = zip(*curve, strict=True)
            ax.plot(xs, ys, "-o", color="#3182bd", mfc="white", lw=1, label="fixed thresholds")
        ax.set_title(f"{group}", fontsize=10)
        ax.set_xlabel("false cut-offs per turn")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel("endpointing delay p50 (ms, compute included)")
    status = ", INTERRUPTED" if run.interrupted else ""
    fig.suptitle(
        f"earshot eval endpointing: split {run.options.split}, {len(run.turns)} trials{status} "
        "(below-left of the curve is better)",
        fontsize=10,
    )
    save_figure_atomic(fig, path)


DEFINITIONS: dict[str, str] = {
    "true_end": "natural mode: end of the last voiced stretch of Silero + VadSegmenter on the "
    "clean recording; inserted mode: end of pocketsphinx's last word, shifted by the pauses",
    "false_cutoff": "an end of turn decided after the speech onset and before the true end; "
    "false_cutoffs_per_turn = all of them / turns (a turn can be cut several times)",
    "delay": "first end of turn decided at or after the true end − the true end (ms), the "
    "policy's compute included; percentiles over turns not missed, numpy 'linear'",
    "missed": f"no end of turn within {MISSED_AFTER_MS:g} ms of the true end",
    "late": f"an end of turn more than {LATE_MS:g} ms after the true end (and not missed)",
    "auc": "Mann-Whitney probability that a true end scores higher than a mid-turn pause, "
    "over the observer lane's pauses, orientation fixed on the calibration split",
    "pause label": "mid: the pause starts more than 60 ms before the true end; end: otherwise",
}


def to_json(run: EndpointingRun) -> dict[str, Any]:
    """The ``endpointing.json`` document of a run."""
    from dataclasses import asdict

    settings = asdict(run.options)
    del settings["out_dir"], settings["quiet"]  # where and how it ran: not part of the result
    settings["data_dir"] = (
        os.fspath(run.options.data_dir) if run.options.data_dir else "bundled earshot/data"
    )
    settings["rules_path"] = (
        os.fspath(run.options.rules_path) if run.options.rules_path else "packaged"
    )
    return {
        "eval": "endpointing",
        "interrupted": run.interrupted,
        "settings": settings,
        "components": run.components,
        "definitions": DEFINITIONS,
        "configurations": [c.label for c in run.configs],
        "counts": {"planned_trials": run.planned, "turns": len(run.turns)},
        "goal": run.verdicts,
        "summary": run.summary,
        "aucs": run.aucs,
        "compute": run.compute,
        "cross_validation": run.cv,
        "turns": run.turns,
    }


def write_outputs(run: EndpointingRun) -> None:
    """Write ``endpointing.json``, ``endpointing.txt`` and ``endpointing.png`` (atomically)."""
    from earshot.evals.outputs import write_eval_outputs

    write_eval_outputs(
        run.options.out_dir,
        "endpointing",
        to_json(run),
        tables_text(run),
        lambda png: plot_results(png, run),
    )


def _cv_cell(v: Sequence[float], fmt: str) -> str:
    return f"{v[0]:{fmt}} [{v[1]:{fmt}}, {v[2]:{fmt}}]"


def render_cv_table(doc: dict[str, Any]) -> Table:
    """The cross-validated figures beside the fixed curve (rich table)."""
    from rich.table import Table

    groups = {g: v for g, v in doc["groups"].items() if v and g != "all"}
    t = Table(
        title="cross-validated (leave one recording and its noises out): every turn scored by "
        "a model fitted without it",
        caption="[95 % bootstrap interval over turns]; goal share: resamples with cut-offs ≤ "
        "fixed 500 ms and delay p50 ≤ fixed 300 ms",
    )
    t.add_column("configuration", no_wrap=True)
    for g, v in groups.items():
        t.add_column(f"{g} ({v['turns']} turns): cut-offs/turn", justify="right")
        t.add_column(f"{g}: delay p50 ms", justify="right")
    labels = ["model"] + [k for k in next(iter(groups.values()), {}) if k.startswith("fixed")]
    for label in labels:
        cells = []
        for v in groups.values():
            cells += [
                _cv_cell(v[label]["cutoffs_per_turn"], ".2f"),
                _cv_cell(v[label]["p50_ms"], ".0f"),
            ]
        t.add_row(label + (" (out of fold)" if label == "model" else " ms"), *cells)
    goal = [f"{v.get('goal_share', 0):.2f}" for v in groups.values() for _ in (0, 1)]
    t.add_row("goal share", *goal)
    aucs = doc["combined_auc"]
    t.add_row(
        "combined AUC (out of fold)",
        *[f"{aucs[g]:.2f}" if aucs[g] is not None else "n/a" for g in groups for _ in (0, 1)],
    )
    return t
