"""The latency chart of `earshot converse`: one stacked bar per turn, one colour per term."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from earshot.audio.io import save_figure_atomic
from earshot.metrics.budget import TermBudget
from earshot.metrics.stats import validate_terms
from earshot.metrics.turn import TERMS, TurnRecord

if TYPE_CHECKING:
    from matplotlib.artist import Artist

_PLOT_HEIGHT_PX = 540
_PLOT_DPI = 100

TERM_COLOURS: dict[str, str] = {
    "network_in": "#7f7f7f",
    "uplink_jitter_buffer": "#c7c7c7",
    "endpointing": "#1f77b4",
    "stt_finalization": "#ff7f0e",
    "llm_ttft": "#d62728",
    "tool": "#8c564b",
    "sentence_aggregation": "#9467bd",
    "tts_first_audio": "#2ca02c",
    "jitter_buffer": "#17becf",
    "network_out": "#bcbd22",
    "client_playout": "#dbdb8d",
    "engine_overhead": "#e377c2",
}
"""One fixed colour per term (matplotlib's tab10), so every plot uses the same key."""


def plot_size_px(num_turns: int) -> tuple[int, int]:
    """(width, height) in pixels of the latency plot for ``num_turns`` turns."""
    return min(2400, max(900, 400 + 40 * num_turns)), _PLOT_HEIGHT_PX


def plot_latency(
    path: str | os.PathLike[str], turns: Sequence[TurnRecord], budget: TermBudget
) -> None:
    """Draw TTFAT per turn as stacked term bars against the total budget; write a PNG atomically.

    One bar per turn (x = turn number, y = ms), one fixed colour per term (`TERM_COLOURS`), a
    dashed line at ``budget.total_ms``. Incomplete turns get a short hatched stub labelled
    "incomplete", failed turns (`TurnRecord.failure`: their marks time a fallback) a red one
    labelled "FAILED"; neither is drawn as a TTFAT. The image is `plot_size_px(len(turns))` pixels.

    Raises:
        ValueError: a complete turn has a negative term (a clock bug; see `validate_terms`).
    """
    validate_terms(turns)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    width_px, height_px = plot_size_px(len(turns))
    fig = Figure(figsize=(width_px / _PLOT_DPI, height_px / _PLOT_DPI), dpi=_PLOT_DPI)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()

    complete = [t for t in turns if t.measured]
    incomplete = [t for t in turns if not t.measured]
    ttfats = [t.ttfat_ms for t in complete if t.ttfat_ms is not None]
    top_ms = max([budget.total_ms, *ttfats]) * 1.12

    xs = [t.turn for t in complete]
    bottoms = [0.0] * len(complete)
    for term in TERMS:
        heights = [(t.terms_ms or {})[term] for t in complete]
        ax.bar(xs, heights, bottom=bottoms, color=TERM_COLOURS[term], label=term, width=0.7)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    if len(turns) <= 40:
        for x, total in zip(xs, ttfats, strict=True):
            over = total > budget.total_ms
            ax.text(
                x,
                total + top_ms * 0.01,
                f"{total:.0f}",
                ha="center",
                va="bottom",
                fontsize=8,
                color="#c00000" if over else "black",
                fontweight="bold" if over else "normal",
            )
    for t in incomplete:
        failed = t.failure is not None
        colour = "#c00000" if failed else "#555555"
        ax.bar(t.turn, top_ms * 0.05, width=0.7, fill=False, hatch="///", edgecolor=colour)
        ax.text(
            t.turn,
            top_ms * 0.06,
            "FAILED" if failed else "incomplete",
            rotation=90,
            ha="center",
            va="bottom",
            fontsize=8,
            color=colour,
        )

    budget_label = f"TTFAT budget {budget.total_ms:,.0f} ms ({budget.name})"
    ax.axhline(budget.total_ms, color="#c00000", linestyle="--", linewidth=1.5)
    handles: list[Artist] = [
        Line2D([], [], color="#c00000", linestyle="--", linewidth=1.5, label=budget_label)
    ]
    handles += [Patch(facecolor=TERM_COLOURS[n], label=n) for n in reversed(TERMS)]
    num_failed = sum(1 for t in incomplete if t.failure is not None)
    if num_failed < len(incomplete):
        handles.append(Patch(fill=False, hatch="///", edgecolor="#555555", label="incomplete"))
    if num_failed:
        handles.append(Patch(fill=False, hatch="///", edgecolor="#c00000", label="FAILED"))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title="TTFAT terms, top to bottom",
        title_fontsize=9,
        frameon=False,
    )
    ax.set_xlabel("turn")
    ax.set_ylabel("ms")
    ax.set_ylim(0, top_ms)
    if turns:
        ax.set_xlim(min(t.turn for t in turns) - 0.6, max(t.turn for t in turns) + 0.6)
    else:
        ax.text(0.5, 0.5, "no turns", transform=ax.transAxes, ha="center", va="center")
    if 0 < len(turns) <= 30:
        ax.set_xticks([t.turn for t in turns])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    num_over = sum(1 for v in ttfats if v > budget.total_ms)
    ax.set_title(
        f"TTFAT per turn: {num_over} of {len(complete)} measured turns over budget"
        + (f", {num_failed} FAILED" if num_failed else "")
        + (f", {len(incomplete) - num_failed} incomplete" if len(incomplete) > num_failed else ""),
        fontsize=11,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)

    save_figure_atomic(fig, path, dpi=_PLOT_DPI)
