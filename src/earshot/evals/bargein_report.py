"""Outputs of `earshot eval bargein`: JSON, tables and the chart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.audio.io import save_figure_atomic
from earshot.evals.bargein_scenarios import (
    BACKCHANNEL_VOICE,
    CONDITIONS,
)

if TYPE_CHECKING:
    from rich.table import Table

from earshot.evals.bargein_model import (
    EOT_SILENCE_MS,
    RULES_RESOURCE,
    BargeInOptions,
    BargeInRun,
    components,
)
from earshot.evals.harness import Report, RunResult

# --------------------------------------------------------------------------- outputs


def _settings(run: BargeInRun) -> dict[str, Any]:
    o = run.options
    return {
        "seed": o.seed,
        "quick": o.quick,
        "data": os.fspath(o.data_dir) if o.data_dir is not None else "bundled earshot/data",
        "language": o.language,
        "offsets_ms": list(o.offsets_ms),
        "exact_timing": o.exact_timing,
        "frame_ms": o.frame_ms,
        "min_interruption_ms": o.min_interruption_ms,
        "false_interruption_timeout_ms": o.false_interruption_timeout_ms,
        "reaction_bound_ms": o.bound_ms,
        "eot_silence_ms": EOT_SILENCE_MS,
        "llm": "scripted",
        "llm_profile": o.llm_profile,
        "llm_rules": RULES_RESOURCE,
        "reply_text": run.reply_text,
        "reply_ms": round(run.reply_ms, 1),
        "conditions": {c.name: {"echo": c.echo, "aec": c.aec} for c in CONDITIONS},
        "backchannel_voice": BACKCHANNEL_VOICE,
    }


def to_json(run: BargeInRun) -> dict[str, Any]:
    """The ``bargein.json`` document of a run."""
    from earshot.evals import bargein_score

    return {
        "eval": "bargein",
        "interrupted": run.interrupted,
        "settings": _settings(run),
        "components": run.components,
        "definitions": (bargein_score.__doc__ or "").strip(),
        "percentiles": "numpy 'linear' (Hyndman & Fan type 7)",
        "counts": {"planned": run.planned, "run": len(run.results)},
        "summary": run.summary,
        "scenarios": run.results,
    }


def _f(value: Any, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def render_tables(run: BargeInRun) -> tuple[Table, Table]:
    """The per-scenario table and the per-condition summary table."""
    from rich.table import Table

    status = " — INTERRUPTED, partial" if run.interrupted else ""
    scenarios = Table(title=f"eval bargein: {len(run.results)} of {run.planned} scenarios{status}")
    for col in ("scenario", "event", "offset ms", "outcome"):
        scenarios.add_column(col)
    for col in ("reaction ms (VAD / GT)", "heard / gen words", "self-int", "resumes"):
        scenarios.add_column(col, justify="right")
    for r in run.results:
        event_bi = next((b for b in r["barge_ins"] if b.get("caused_by_event")), None)
        first = event_bi or (r["barge_ins"][0] if r["barge_ins"] else None)
        heard = (first or {}).get("heard")
        scenarios.add_row(
            r["scenario"],
            Path(r["event"]).name,
            _f(r.get("actual_offset_ms")),
            r["outcome"],
            "—"
            if event_bi is None
            else f"{_f(event_bi['reaction_ms'])} / {_f(event_bi.get('gt_reaction_ms'))}",
            "—" if heard is None else f"{heard['heard_words']} / {heard['generated_words']}",
            str(r["self_interruptions"]),
            str(r["resumes"]),
        )
    s = run.summary
    summary = Table(
        title=(
            f"barge-in summary (reaction bound {s.get('bound_ms', 0):g} ms = min interruption "
            "+ 2 frames)"
        ),
        caption="; ".join(f"{k}: {v}" for k, v in run.components.items()),
    )
    summary.add_column("condition")
    for col in (
        "cut-in ok",
        "reaction p50/p95 VAD",
        "reaction p50/p95 GT",
        "VAD lag p50",
        "heard ok",
        "self-int",
        "false int",
        "backch.",
        "resumes",
        "replies done",
        "ERLE dB",
    ):
        summary.add_column(col, justify="right")
    groups = [*s.get("by_condition", {}).items(), ("ALL", s.get("overall", {}))]
    for name, g in groups:
        if not g:
            continue
        rs, rg, lag = g["reaction_session"], g["reaction_ground_truth"], g["vad_onset_lag"]
        summary.add_row(
            name,
            f"{g['cut_in_successes']}/{g['cut_ins']}",
            f"{_f(rs['p50_ms'])} / {_f(rs['p95_ms'])}",
            f"{_f(rg['p50_ms'])} / {_f(rg['p95_ms'])}",
            _f(lag["p50_ms"]),
            f"{g['heard_checks_passed']}/{g['heard_checks']}",
            str(g["self_interruptions"]),
            str(g["false_interruptions"]),
            str(g["backchannel_resolutions"]),
            str(g["resumes"]),
            f"{g['replies_completed']}/{g['noise_backchannel_scenarios']}",
            _f(g["erle_db_median"], 1),
            end_section=name == groups[-2][0] if len(groups) > 1 else False,
        )
    return scenarios, summary


def done_when_line(run: BargeInRun) -> str:
    """One line: the session-measured reaction p95 against the bound."""
    d = run.summary.get("done_when", {})
    verdict = {True: "MET", False: "NOT MET", None: "no cut-in stopped the agent"}[d.get("met")]
    return (
        f"done-when: reaction p95 (session, from VAD onset) {_f(d.get('reaction_p95_session_ms'))}"
        f" ms ≤ {run.options.bound_ms:g} ms: {verdict}"
    )


def plot_results(path: str | os.PathLike[str], run: BargeInRun) -> None:
    """Reaction times of the cut-ins (session and ground truth, with the bound) and, per
    condition, self-interruptions, false interruptions, resumes and failed cut-ins; written
    atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.3, 1.0))
    names = [c.name for c in CONDITIONS]
    colours = {"clean": "#3182bd", "echo": "#e6550d", "echo+aec": "#31a354"}
    for row, name in enumerate(names):
        for col, key, marker in ((0, "reaction_ms", "o"), (1, "gt_reaction_ms", "s")):
            values = [
                float(b[key])
                for r in run.results
                if r["condition"] == name and r["kind"] == "cut-in"
                for b in r["barge_ins"]
                if b.get("caused_by_event") and b.get(key) is not None
            ]
            y = row * 2 + col
            left.plot(values, [y] * len(values), marker, color=colours[name], alpha=0.6, ms=6)
            if values:
                left.text(max(values), y + 0.25, f" n={len(values)}", fontsize=7)
    left.axvline(run.options.bound_ms, color="#444444", ls="--", lw=1)
    left.text(run.options.bound_ms, -0.8, f" bound {run.options.bound_ms:g} ms", fontsize=8)
    left.set_yticks(
        range(2 * len(names)), [f"{n} · {w}" for n in names for w in ("VAD onset", "ground truth")]
    )
    left.set_ylim(-1, 2 * len(names))
    left.set_xlabel("reaction: last agent sample − user onset (ms)")
    left.set_title("cut-in reaction time", fontsize=10)
    left.grid(axis="x", alpha=0.3)
    metrics = (
        ("self_interruptions", "self-interruptions"),
        ("false_interruptions", "false interruptions"),
        ("resumes", "resumes"),
        ("failed_cut_ins", "failed cut-ins"),
    )
    by_cond = run.summary.get("by_condition", {})
    width = 0.8 / len(metrics)
    for i, (key, label) in enumerate(metrics):
        heights = []
        for name in names:
            g = by_cond.get(name)
            if g is None:
                heights.append(0)
            elif key == "failed_cut_ins":
                heights.append(g["cut_ins"] - g["cut_in_successes"])
            else:
                heights.append(g[key])
        xs = [j + (i - (len(metrics) - 1) / 2) * width for j in range(len(names))]
        right.bar(xs, heights, width=width, label=label)
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("count")
    right.set_title("per condition", fontsize=10)
    right.legend(fontsize=8, frameon=False)
    right.grid(axis="y", alpha=0.3)
    status = ", INTERRUPTED" if run.interrupted else ""
    fig.suptitle(
        f"earshot eval bargein: {len(run.results)} scenarios{status} "
        f"(LLM simulated; backchannels are TTS)",
        fontsize=10,
    )
    save_figure_atomic(fig, path)


def bargein_run(opts: BargeInOptions, run: RunResult) -> BargeInRun:
    """The `BargeInRun` record of the trials a harness run finished."""
    from earshot.evals.bargein_plan import reply_info
    from earshot.evals.bargein_summary import summarize_results

    reply_text, reply_ms = reply_info()
    return BargeInRun(
        opts,
        planned=run.total if run.total is not None else run.planned,
        results=[dict(r) for r in run.results],
        components=components(opts),
        reply_text=reply_text,
        reply_ms=reply_ms,
        interrupted=run.interrupted,
        summary=summarize_results(run.results, opts.bound_ms),
    )


def report(opts: BargeInOptions, run: RunResult) -> Report:
    """The harness report: ``bargein.json``, the two tables with the done-when line, the chart."""
    record = bargein_run(opts, run)
    return Report(
        doc=to_json(record),
        tables=render_tables(record),
        lines=[done_when_line(record)],
        plot=lambda png: plot_results(png, record),
        text_width=140,
    )
