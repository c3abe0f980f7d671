"""Stacked bar chart of TTFAT terms, baseline against what-if (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from earshot.audio.io import save_figure_atomic


def write_chart(
    path: str | os.PathLike[str],
    title: str,
    bars: Sequence[tuple[str, Mapping[str, float]]],
    *,
    markers: Mapping[str, Mapping[str, float]] | None = None,
    budget_ms: float | None = None,
) -> None:
    """Write a PNG with one stacked bar per entry of ``bars``, atomically (temp file + rename).

    Args:
        path: output ``.png``.
        title: chart title.
        bars: (bar label, term → ms) in display order; every bar stacks its terms bottom-up in
            the order of the first bar.
        markers: bar label → {marker label (e.g. "p99") → ms}, drawn as points beside the bar.
        budget_ms: a target drawn as a dashed line.

    Raises:
        ValueError: no bars, or a path that does not end in ``.png``.
        OutputError: the file cannot be written (a `ValueError`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"{p}: the chart is a PNG; give a path ending in .png")
    if not bars:
        raise ValueError("nothing to draw: give at least one bar")
    terms = list(bars[0][1])
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(bars) + 3.0), 5.0))
    try:
        xs = range(len(bars))
        bottoms = [0.0] * len(bars)
        for i, term in enumerate(terms):
            heights = [values.get(term, 0.0) for _, values in bars]
            ax.bar(xs, heights, bottom=bottoms, label=term, color=colours(i % 20), width=0.6)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        for x, (label, _) in enumerate(bars):
            for name, value in (markers or {}).get(label, {}).items():
                ax.plot(x + 0.36, value, marker="<", color="black", markersize=5)
                ax.annotate(f"{name} {value:.0f}", (x + 0.4, value), fontsize=7, va="center")
        if budget_ms is not None:
            ax.axhline(budget_ms, linestyle="--", color="grey", label=f"budget {budget_ms:g} ms")
        ax.set_xticks(list(xs), [label for label, _ in bars], fontsize=8)
        ax.set_ylabel("TTFAT (ms)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        save_figure_atomic(fig, p, dpi=110)
    finally:
        plt.close(fig)
