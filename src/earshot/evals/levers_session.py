"""The session arms of `earshot eval levers`: the response cache and preemptive generation.

Each runs the same recorded-caller track twice through a real session (`run_caller`), lever
off then on, against the proxied llama.cpp replica, and compares TTFAT on the turns the lever
can act on; beside it, ``earshot budget --from OFF/turns.jsonl --lever … --simulate`` on the
off run's turns (`project_ttfat`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot.audio.frames import Pcm16, samples_to_ms
from earshot.evals.levers_runs import (
    SINGLE_PASS_STT,
    CallerRun,
    run_caller,
    turn_values,
    write_turns,
)
from earshot.evals.levers_stats import compare, pct, project_ttfat
from earshot.evals.levers_types import CacheDoc, PreemptiveDoc, ProjectionDoc
from earshot.evals.tracks import PlacedUtterance, build_caller_track, load_clips
from earshot.levers.cache import ResponseCache
from earshot.levers.preemptive import PreemptiveConfig
from earshot.levers.session_levers import SessionLevers
from earshot.llm.base import LanguageModel
from earshot.metrics.turn import TurnRecord

PREEMPTIVE_PASSES = 2
"""The callers go through the preemptive runs this many times in a row: each pass draws the
LLM's injected delay afresh, so the matched turns' p95/p99 rest on twice the turns."""

GAP_MS = 9000.0
"""Silence after each utterance: a 24-token SmolLM2 reply is ~6–8 s of espeak-ng speech."""


def caller_track(paths: Sequence[Path], repeat: int = 1) -> tuple[Pcm16, list[PlacedUtterance]]:
    """The utterances (each ``repeat`` times, in passes) on one track with `GAP_MS` gaps."""
    clips = load_clips(list(paths)) * repeat
    names = [p.name for p in paths] * repeat
    return build_caller_track(clips, GAP_MS, names=names)


def pair_turns(
    off: Sequence[TurnRecord], on: Sequence[TurnRecord]
) -> list[tuple[TurnRecord, TurnRecord]]:
    """Complete turns of two runs of one track, paired by their ``speech_end`` (the same audio
    through the same VAD ends at the same frame; one frame of slack)."""
    by_end = {round(t.marks_ms["speech_end"] / 20.0): t for t in off if t.complete}
    pairs = []
    for turn in on:
        if not turn.complete:
            continue
        key = round(turn.marks_ms["speech_end"] / 20.0)
        match = by_end.get(key) or by_end.get(key - 1) or by_end.get(key + 1)
        if match is not None:
            pairs.append((match, turn))
    return pairs


def _run_pair(
    name: str,
    out_dir: Path,
    track: Pcm16,
    count: int,
    llm: LanguageModel,
    levers: SessionLevers,
    stt_options: Mapping[str, Any] | None = None,
    on_run: Callable[[str], None] | None = None,
) -> tuple[CallerRun, CallerRun, Path]:
    if on_run is not None:
        on_run(f"{name}-off")
    off = run_caller(track, count, llm, stt_options=stt_options)
    if on_run is not None:
        on_run(f"{name}-on")
    on = run_caller(track, count, llm, levers, stt_options=stt_options)
    off_path = out_dir / "runs" / f"{name}-off" / "turns.jsonl"
    on_path = out_dir / "runs" / f"{name}-on" / "turns.jsonl"
    for path, run in ((off_path, off), (on_path, on)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_turns(path, run.all_turns)
    return off, on, off_path


def _term_means(turns: Sequence[TurnRecord]) -> dict[str, float]:
    terms = [t.terms_ms for t in turns if t.terms_ms is not None]
    if not terms:
        return {}
    return {k: float(np.mean([t[k] for t in terms])) for k in terms[0]}


def _saving_per_term(off: Sequence[TurnRecord], on: Sequence[TurnRecord]) -> dict[str, float]:
    a, b = _term_means(off), _term_means(on)
    return {k: round(b[k] - a[k], 3) for k in a if k in b}


def cache_arm(
    out_dir: Path,
    paths: Sequence[Path],
    llm: LanguageModel,
    seed: int,
    max_word_distance: float = 0.0,
    on_run: Callable[[str], None] | None = None,
) -> CacheDoc:
    """Each utterance twice; the second pass can hit. TTFAT of second-pass turns off vs on."""
    track, placed = caller_track(paths, repeat=2)
    levers = SessionLevers(cache=ResponseCache(max_word_distance=max_word_distance))
    off, on, off_path = _run_pair("cache", out_dir, track, len(placed), llm, levers, on_run=on_run)
    second_pass_ms = samples_to_ms(placed[len(paths)].start_sample)
    pairs = [
        (a, b)
        for a, b in pair_turns(off.turns, on.turns)
        if a.marks_ms["speech_end"] >= second_pass_ms
    ]
    off_rep = [a for a, _ in pairs]
    on_rep = [b for _, b in pairs]
    hits = [
        t
        for t in on_rep
        if (t.extra.get("cache") or {}).get("hit") and not t.extra["cache"].get("retracted")
    ]
    hit_rate = len(hits) / len(on_rep) if on_rep else 0.0
    exact = [
        abs(t.ttfat_ms - (t.terms_ms["endpointing"] + t.terms_ms["jitter_buffer"])) < 1e-6  # type: ignore[index,operator]
        for t in hits
    ]
    # Projected on the same turns it is measured on: the off run's second-pass turns.
    repeat_path = off_path.parent / "repeat_turns.jsonl"
    write_turns(repeat_path, off_rep)
    projection = _projection(repeat_path, f"cache={hit_rate:.3f}", seed) if off_rep else None
    return {
        "lever": "cache",
        "turns_compared": len(pairs),
        "max_word_distance": max_word_distance,
        "hit_rate": round(hit_rate, 4),
        "cache": on.levers.get("cache"),
        "comparison": compare(
            "ttfat (repeat turns)",
            turn_values(off_rep, "ttfat"),
            turn_values(on_rep, "ttfat"),
            projection.get("projected") if projection else None,
            seed,
            projection.get("baseline") if projection else None,
        ).to_json(),
        "saving_per_term_ms": _saving_per_term(off_rep, on_rep),
        "hit_ttfat_is_endpointing_plus_jitter_only": bool(exact) and all(exact),
        "hit_ttfat_ms": [round(t.ttfat_ms or 0.0, 3) for t in hits],
        "hit_endpointing_plus_jitter_ms": [
            round(t.terms_ms["endpointing"] + t.terms_ms["jitter_buffer"], 3)  # type: ignore[index]
            for t in hits
        ],
        "projection": projection,
        "note": "a hit is looked up on the partial transcript at end-of-turn and confirmed by "
        "the final (a mismatch interrupts it and answers anew: 'retracted')",
    }


def preemptive_arm(
    out_dir: Path,
    paths: Sequence[Path],
    llm: LanguageModel,
    seed: int,
    stable_ms: float,
    on_run: Callable[[str], None] | None = None,
) -> PreemptiveDoc:
    """Each utterance `PREEMPTIVE_PASSES` times, preemptive off vs on; TTFAT on turns whose
    final matched the speculation.

    Both runs use `SINGLE_PASS_STT`, whose held partial is its final (the speculation key);
    the budget model is fed what was measured: the speculation's median start after speech
    end, the match rate, and ``through=tts`` (the speculation synthesizes its first sentence
    too)."""
    track, placed = caller_track(paths, repeat=PREEMPTIVE_PASSES)
    levers = SessionLevers(preemptive=PreemptiveConfig(stable_ms=stable_ms))
    off, on, off_path = _run_pair(
        "preemptive", out_dir, track, len(placed), llm, levers, SINGLE_PASS_STT, on_run
    )
    both = pair_turns(off.turns, on.turns)
    matched = [(a, b) for a, b in both if "preemptive" in b.extra]
    off_m = [a for a, _ in matched]
    on_m = [b for _, b in matched]
    commit_rate = len(matched) / len(both) if both else 0.0
    lead = [b.extra["preemptive"]["started_ms"] - b.marks_ms["speech_end"] for _, b in matched]
    start_ms = float(np.median(lead)) if lead else stable_ms
    off_ttft = turn_values(off_m, "llm_ttft")
    off_ttft_p50 = pct(off_ttft, 50.0)
    # On the matched turns the model's question is "the partial held" (mismatch 0), on their
    # own baseline; over every turn it is the measured mismatch rate on the whole baseline.
    matched_path = off_path.parent / "matched_turns.jsonl"
    write_turns(matched_path, off_m)
    lever = f"preemptive,through=tts,stable_ms={max(0.0, start_ms):.0f}"
    projection = _projection(matched_path, f"{lever},mismatch=0", seed) if off_m else None
    comparison = compare(
        "ttfat (matched turns)",
        turn_values(off_m, "ttfat"),
        turn_values(on_m, "ttfat"),
        projection.get("projected") if projection else None,
        seed,
        projection.get("baseline") if projection else None,
    )
    projection_all = _projection(off_path, f"{lever},mismatch={1 - commit_rate:.3f}", seed)
    comparison_all = compare(
        "ttfat (all turns)",
        turn_values([a for a, _ in both], "ttfat"),
        turn_values([b for _, b in both], "ttfat"),
        projection_all.get("projected") if projection_all else None,
        seed,
        projection_all.get("baseline") if projection_all else None,
    )
    cut = comparison.change_ms.get("p50")
    return {
        "lever": "preemptive",
        "stt": "pocketsphinx single pass (SINGLE_PASS_STT)",
        "turns_compared": len(both),
        "matched": len(matched),
        "match_rate": round(commit_rate, 4),
        "passes": PREEMPTIVE_PASSES,
        "lead_ms": [round(x, 3) for x in lead],
        "preemptive": on.levers.get("preemptive"),
        "comparison": comparison.to_json(),
        "comparison_all_turns": comparison_all.to_json(),
        "projection_all_turns": projection_all,
        "saving_per_term_ms": _saving_per_term(off_m, on_m),
        "off_llm_ttft_p50_ms": off_ttft_p50,
        "meets_criterion": None if cut is None or off_ttft_p50 is None else -cut >= off_ttft_p50,
        "criterion": "TTFAT p50 cut on matched turns >= the LLM's TTFT p50 (off run)",
        "projection": projection,
    }


def _projection(path: Path, lever: str, seed: int) -> ProjectionDoc:
    try:
        return project_ttfat(path, lever, seed)
    except ValueError as exc:  # no complete turn, or the lever does not fit
        return {"lever": lever, "error": str(exc)}
