"""Outputs of `earshot eval stt`: JSON, the WER table and the chart."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.audio.io import save_figure_atomic
from earshot.evals.harness import Report, RunResult
from earshot.evals.stt_score import FRAME_MS, SttOptions, summarize

if TYPE_CHECKING:
    from rich.table import Table


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def to_json(opts: SttOptions, run: RunResult) -> dict[str, Any]:
    """The ``stt.json`` document."""
    results = run.results
    return {
        "eval": "stt",
        "interrupted": run.interrupted,
        "settings": {
            "backends": list(opts.backends),
            "mode": opts.mode,
            "frame_ms": FRAME_MS if opts.mode == "streaming" else None,
            "language": opts.language,
            "data": os.fspath(opts.data_dir)
            if opts.data_dir is not None
            else "bundled earshot/data",
            "normalisation": "lower case, punctuation removed, whitespace split (jiwer)",
        },
        "counts": {
            "planned": run.total if run.total is not None else run.planned,
            "run": len(results),
        },
        "summary": summarize(results, opts.backends),
        "recordings": results,
    }


def render_table(opts: SttOptions, run: RunResult) -> Table:
    """WER per recording (rows) and backend (columns), then the corpus WER."""
    from rich.table import Table

    status = " — INTERRUPTED, partial" if run.interrupted else ""
    table = Table(title=f"eval stt: word error rate, {opts.mode}{status}")
    table.add_column("recording")
    table.add_column("words", justify="right")
    for backend in opts.backends:
        table.add_column(backend, justify="right")
    by_path: dict[str, dict[str, Any]] = {}
    for r in run.results:
        by_path.setdefault(r["path"], {})[r["backend"]] = r
    for path, row in by_path.items():
        words = next(iter(row.values()))["reference_words"]
        cells = [_pct(row[b]["wer"]) if b in row else "—" for b in opts.backends]
        table.add_row(Path(path).name, str(words), *cells)
    summary = summarize(run.results, opts.backends)
    table.add_section()
    table.add_row(
        "[bold]corpus WER[/bold]",
        str(max((s["reference_words"] for s in summary.values()), default=0)),
        *(f"[bold]{_pct(summary[b]['corpus_wer'])}[/bold]" for b in opts.backends),
    )
    table.add_row("mean of recordings", "", *(_pct(summary[b]["mean_wer"]) for b in opts.backends))
    return table


def plot_wer(path: Path, opts: SttOptions, results: Sequence[Mapping[str, Any]]) -> None:
    """Grouped bars: WER per recording for each backend; written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = list(dict.fromkeys(r["path"] for r in results))
    fig = Figure(figsize=(max(6.0, 1.2 * len(paths) + 2), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(opts.backends))
    for i, backend in enumerate(opts.backends):
        wer = {r["path"]: 100 * r["wer"] for r in results if r["backend"] == backend}
        xs = [j + (i - (len(opts.backends) - 1) / 2) * width for j in range(len(paths))]
        ax.bar(xs, [wer.get(p, 0.0) for p in paths], width=width, label=backend)
    ax.set_xticks(range(len(paths)), [Path(p).stem[:24] for p in paths], rotation=30, ha="right")
    ax.set_ylabel("WER %")
    ax.set_title(f"STT word error rate per recording ({opts.mode})", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    save_figure_atomic(fig, path)


def report(opts: SttOptions, run: RunResult) -> Report:
    """The harness report; exit 1 when no recording was scored."""
    results = run.results
    return Report(
        doc=to_json(opts, run),
        tables=[render_table(opts, run)],
        plot=(lambda png: plot_wer(png, opts, results)) if results else None,
        exit_code=0 if results or run.interrupted else 1,
        message="no recording was scored",
    )
