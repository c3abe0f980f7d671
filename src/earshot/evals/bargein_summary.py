"""Aggregate figures of `earshot eval bargein`: per condition and overall, and the done-when
line (definitions of each figure in `earshot.evals.bargein_score`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from earshot.metrics.stats import stat_ms as stat


def _event_barge_in(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The barge-in caused by the scenario's event, if any."""
    for b in result.get("barge_ins", []):
        if b.get("caused_by_event"):
            return dict(b)
    return None


def summarize_results(results: Sequence[Mapping[str, Any]], bound_ms: float) -> dict[str, Any]:
    """Aggregate scenario results: per condition and overall.

    Args:
        results: scenario results as `earshot.evals.bargein` writes them.
        bound_ms: the reaction bound of the done-when (min_interruption_ms + 2 frames).

    Returns:
        ``{"overall": {...}, "by_condition": {name: {...}}, "bound_ms": ..., "done_when": ...}``
        where each group has the counts and `stat` figures named in the module docstring.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r["condition"]), []).append(r)
    by_condition = {name: _group(rs) for name, rs in groups.items()}
    overall = _group(results)
    p95 = overall["reaction_session"]["p95_ms"]
    return {
        "bound_ms": bound_ms,
        "overall": overall,
        "by_condition": by_condition,
        "done_when": {
            "reaction_p95_session_ms": p95,
            "bound_ms": bound_ms,
            "met": None if p95 is None else bool(p95 <= bound_ms + 1e-6),
        },
    }


def _group(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    cut_ins = [r for r in results if r["kind"] == "cut-in"]
    others = [r for r in results if r["kind"] != "cut-in"]
    reactions: list[float] = []
    reactions_gt: list[float] = []
    lags: list[float] = []
    last_diffs: list[float] = []
    for r in cut_ins:
        b = _event_barge_in(r)
        if b is None or b.get("reaction_ms") is None:
            continue
        reactions.append(float(b["reaction_ms"]))
        if b.get("gt_reaction_ms") is not None:
            reactions_gt.append(float(b["gt_reaction_ms"]))
        if b.get("vad_onset_lag_ms") is not None:
            lags.append(float(b["vad_onset_lag_ms"]))
        if b.get("gt_last_agent_sample_ms") is not None:
            last_diffs.append(
                float(b["last_agent_sample_ms"]) - float(b["gt_last_agent_sample_ms"])
            )
    all_barge_ins = [b for r in results for b in r.get("barge_ins", [])]
    heard = [b["heard"] for b in all_barge_ins if "heard" in b]
    heard_ok = [
        h
        for h in heard
        if h["matches_session"] is not False
        and h["ended_before_stop"]
        and h["prefix_of_reply"]
        and h["next_word_cut"]
    ]
    erles = [float(r["erle_db"]) for r in results if r.get("erle_db") is not None]
    successes = sum(1 for r in cut_ins if r.get("success"))
    completed = sum(1 for r in others if (r.get("reply") or {}).get("completed"))
    return {
        "scenarios": len(results),
        "cut_ins": len(cut_ins),
        "cut_in_successes": successes,
        "cut_in_success_rate": round(successes / len(cut_ins), 4) if cut_ins else None,
        "reaction_session": stat(reactions),
        "reaction_ground_truth": stat(reactions_gt),
        "vad_onset_lag": stat(lags),
        "last_sample_session_minus_gt": stat(last_diffs),
        "barge_ins": len(all_barge_ins),
        "self_interruptions": sum(1 for b in all_barge_ins if b.get("self_interruption")),
        "false_interruptions": sum(
            1 for b in all_barge_ins if b.get("resolution") == "false_interruption"
        ),
        "backchannel_resolutions": sum(
            1 for b in all_barge_ins if b.get("resolution") == "backchannel"
        ),
        "resumes": sum(int(r.get("resumes", 0)) for r in results),
        "heard_checks": len(heard),
        "heard_checks_passed": len(heard_ok),
        "noise_backchannel_scenarios": len(others),
        "replies_completed": completed,
        "erle_db_median": round(float(np.median(erles)), 2) if erles else None,
        "erle_db_min": round(min(erles), 2) if erles else None,
    }
