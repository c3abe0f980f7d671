"""Outputs of `earshot eval latency`: JSON, table and the chart."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.audio.frames import ms_to_samples
from earshot.audio.io import save_figure_atomic
from earshot.metrics.turn import TurnRecord

if TYPE_CHECKING:
    from rich.table import Table

from earshot.evals.harness import Report, RunResult
from earshot.evals.latency_model import (
    STAGES,
    LatencyOptions,
    LatencyRun,
    Utterance,
    stage_deltas,
    summarize_stages,
    turn_from_json,
)
from earshot.evals.tracks import LEAD_MS, PlacedUtterance

# --------------------------------------------------------------------------- outputs


def _stack(o: LatencyOptions) -> dict[str, str]:
    from earshot.stacks import resolve_stack

    stack = o.stack or resolve_stack(None)
    return {"stt": stack.stt, "llm": stack.llm, "tts": stack.tts}


def _clock(o: LatencyOptions) -> str:
    if o.real_time:
        return "system (real time)"
    return "simulated (compute free: exact)" if o.exact_timing else "simulated (compute charged)"


def _settings(run: LatencyRun) -> dict[str, Any]:
    o = run.options
    return {
        "n": o.n,
        "seed": o.seed,
        "data": os.fspath(o.data_dir) if o.data_dir is not None else "bundled earshot/data",
        "language": o.language,
        "vad": o.vad,
        "endpointer": o.endpointer,
        "eot_silence_ms": o.eot_silence_ms,
        "stack": _stack(o),
        "llm": _stack(o)["llm"],
        "llm_profile": o.llm_profile,
        "clock": "system (real time)"
        if o.real_time
        else (
            "simulated (compute free: exact)" if o.exact_timing else "simulated (compute charged)"
        ),
        "exact_timing": o.exact_timing,
        "quick": o.quick,
        "trials": "one session per utterance",
        "gap_ms": o.gap_ms,
        "lead_ms": LEAD_MS,
    }


def turn_json(turn: TurnRecord) -> dict[str, Any]:
    """A turn's ``turns.jsonl`` object with its stage deltas (``stages_ms``)."""
    obj = turn.to_json()
    deltas = stage_deltas(turn)
    obj["stages_ms"] = None if deltas is None else {k: round(v, 3) for k, v in deltas.items()}
    return obj


def to_json(run: LatencyRun) -> dict[str, Any]:
    """The ``latency.json`` document of a run."""
    from earshot.audio.frames import samples_to_ms

    turns_json = [turn_json(t) for t in run.turns]
    complete = run.complete_turns
    with_turn = {t.extra.get("utterance") for t in run.turns}
    return {
        "eval": "latency",
        "interrupted": run.interrupted,
        "settings": _settings(run),
        "components": run.components,
        "counts": {
            "planned": run.planned,
            "utterances": len(run.utterances),
            "turns": len(run.turns),
            "complete_turns": len(complete),
            "incomplete_turns": len(run.turns) - len(complete),
            "utterances_without_turn": sum(1 for u in run.utterances if u.name not in with_turn),
            "turns_waiting_for_earlier_reply": len(run.waited_turns),
            "input_ms": round(run.input_ms, 3),
            "processed_input_ms": round(run.processed_ms, 3),
        },
        "stage_definitions": {
            s.name: {"from": s.start_mark, "to": s.end_mark, "description": s.description}
            for s in STAGES
        },
        "percentiles": "numpy 'linear' (Hyndman & Fan type 7), over complete turns",
        **run.summary,
        "utterances": [
            {
                "path": u.name,
                "duration_s": u.duration_s,
                "transcript": u.transcript,
                "start_ms": round(samples_to_ms(p.start_sample), 3),
                "end_ms": round(samples_to_ms(p.end_sample), 3),
            }
            for u, p in zip(run.utterances, run.placed, strict=True)
        ],
        "turns": turns_json,
    }


def _fmt(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


_STAT_KEYS = ("p50_ms", "p95_ms", "mean_ms", "max_ms")


def render_table(run: LatencyRun) -> Table:
    """The terminal table: p50/p95/mean/max of each stage and of TTFAT (ms)."""
    from rich.table import Table

    complete = len(run.complete_turns)
    status = " — INTERRUPTED, partial" if run.interrupted else ""
    notes = []
    if run.processed_ms < run.input_ms:
        notes.append(
            f"the sessions consumed {run.processed_ms / 1000:.1f} s of the "
            f"{run.input_ms / 1000:.1f} s of caller tracks: results cover that part only"
        )
    if run.waited_turns:
        notes.append(
            f"{len(run.waited_turns)} turn(s) waited for an earlier reply to finish playing; "
            "their playout and TTFAT include that wait"
        )
    table = Table(
        title=(
            f"eval latency: {complete} complete turns of {len(run.turns)} "
            f"from {len(run.utterances)} of {run.planned} utterances{status}"
        ),
        caption="\n".join(notes) or None,
    )
    table.add_column("stage", no_wrap=True)
    for col in ("p50 ms", "p95 ms", "mean ms", "max ms"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("span (marks)")
    stages = run.summary.get("stages", {})
    for s in STAGES:
        stat = stages.get(s.name, {})
        table.add_row(
            s.name, *(_fmt(stat.get(k)) for k in _STAT_KEYS), f"{s.start_mark} → {s.end_mark}"
        )
    ttfat = run.summary.get("ttfat", {})
    table.add_row(
        "[bold]TTFAT[/bold]",
        *(f"[bold]{_fmt(ttfat.get(k))}[/bold]" for k in _STAT_KEYS),
        "speech_end → playout_start",
        end_section=True,
    )
    overhead = run.summary.get("terms", {}).get("engine_overhead", {})
    table.add_row(
        "engine_overhead",
        *(_fmt(overhead.get(k)) for k in _STAT_KEYS),
        "stt_final → llm_request + tts_first_audio → playout_queued",
    )
    return table


def components_lines(run: LatencyRun) -> list[str]:
    """One line per stage backend, saying which are real and which simulated."""
    return [f"  {name:12s} {desc}" for name, desc in run.components.items()]


def plot_stages(path: str | os.PathLike[str], run: LatencyRun) -> None:
    """Draw p50 and p95 of each stage and of TTFAT as horizontal bars, with every complete
    turn's value as a dot; write the PNG atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [s.name for s in STAGES] + ["TTFAT"]
    stats = [run.summary["stages"][s.name] for s in STAGES] + [run.summary["ttfat"]]
    per_turn: list[list[float]] = [[] for _ in names]
    for t in run.complete_turns:
        deltas = stage_deltas(t)
        assert deltas is not None and t.ttfat_ms is not None
        for i, s in enumerate(STAGES):
            per_turn[i].append(deltas[s.name])
        per_turn[-1].append(t.ttfat_ms)

    fig = Figure(figsize=(10.0, 5.4), dpi=100)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    ys = list(range(len(names)))[::-1]
    p50 = [float(st["p50_ms"] or 0.0) for st in stats]
    p95 = [float(st["p95_ms"] or 0.0) for st in stats]
    ax.barh(ys, p95, height=0.7, color="#9ecae1", label="p95")
    ax.barh(ys, p50, height=0.7, color="#3182bd", label="p50")
    for y, values in zip(ys, per_turn, strict=True):
        ax.plot(values, [y] * len(values), "o", ms=3, color="#222222", alpha=0.5)
    top = max([*p95, *(max(v) for v in per_turn if v), 1.0])
    for y, a, b in zip(ys, p50, p95, strict=True):
        ax.text(b + top * 0.01, y, f"p50 {a:,.0f} · p95 {b:,.0f}", va="center", fontsize=8)
    ax.set_yticks(ys, names)
    ax.set_xlim(0, top * 1.3)
    ax.set_xlabel("ms (dots: individual turns)")
    llm = run.components.get("llm", "")
    clock = run.components.get("clock", "")
    status = ", INTERRUPTED" if run.interrupted else ""
    if run.waited_turns:
        status += f", {len(run.waited_turns)} waited for an earlier reply"
    ax.set_title(
        f"stage latency over {len(run.complete_turns)} turns{status}\nLLM {llm}; clock {clock}",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)

    save_figure_atomic(fig, path)


def latency_run(opts: LatencyOptions, run: RunResult) -> LatencyRun:
    """The `LatencyRun` of the trials a harness run finished, turns numbered across the run."""
    record = LatencyRun(opts, [], [], interrupted=run.interrupted)
    record.planned = run.total if run.total is not None else run.planned
    for done in run.done:
        result = done.result
        u = result["utterance"]
        record.utterances.append(
            Utterance(
                path=Path(u["file"]),
                name=u["path"],
                duration_s=u["duration_s"],
                transcript=u["transcript"],
                language=u["language"],
            )
        )
        record.placed.append(
            PlacedUtterance(u["path"], ms_to_samples(u["start_ms"]), ms_to_samples(u["end_ms"]))
        )
        record.input_ms += result["input_ms"]
        record.processed_ms += result["processed_ms"]
        record.components = record.components or dict(result["components"])
        for obj in result["turns"]:
            turn = turn_from_json({**obj, "turn": len(record.turns) + 1})
            turn.extra["trial"] = done.trial_id
            record.turns.append(turn)
    record.summary = summarize_stages(record.turns)
    return record


def report(opts: LatencyOptions, run: RunResult) -> Report:
    """The harness report: ``latency.json``, the table, the chart and ``turns.jsonl``."""
    record = latency_run(opts, run)
    turns_text = "".join(
        json.dumps(t.to_json(), ensure_ascii=False, allow_nan=False) + "\n" for t in record.turns
    )
    complete = bool(record.complete_turns)
    return Report(
        doc=to_json(record),
        tables=[render_table(record)],
        lines=components_lines(record),
        plot=lambda png: plot_stages(png, record),
        files={"turns.jsonl": turns_text},
        exit_code=0 if complete or run.interrupted else 1,
        message="no complete turn was measured; check that the recordings hold speech the "
        "VAD detects (--vad) and that --gap-ms leaves room for the end of turn",
    )
