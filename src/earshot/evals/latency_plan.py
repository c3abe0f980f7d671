"""`earshot eval latency`'s plan: which utterances, one trial each.

The plan reads the data folder's ``manifest.jsonl`` (metadata only: paths, durations,
transcripts), draws ``n`` utterances in a seeded order, and yields one trial per utterance.
No audio is read here: each trial reads its own recording, so a corpus of thousands of
recordings is never held in memory at once.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from earshot.evals.harness import Trial, trial_seed
from earshot.evals.latency_model import (
    QUICK_MAX_DURATION_S,
    QUICK_N,
    LatencyOptions,
    Utterance,
)
from earshot.evals.manifest import MANIFEST_NAME, Recording, bundled_data_dir, iter_manifest


@dataclass(frozen=True, slots=True)
class LatencyTrial:
    """One utterance to run through its own session."""

    utterance: Utterance


def load_manifest(
    data_dir: str | os.PathLike[str], *, kind: str = "speech", language: str = "en"
) -> list[Utterance]:
    """The ``kind`` recordings in ``language`` listed in ``data_dir/manifest.jsonl``.

    Returns:
        The matching entries, sorted by their manifest path (so selection does not depend on
        line order).

    Raises:
        ValueError: the folder or its manifest is missing, a line is not a JSON object, an entry
            lacks a required field or names a file that does not exist, or no entry matches
            (each message names the file, line and fix).
    """
    folder = Path(data_dir)
    found: list[Utterance] = []
    for item in iter_manifest(folder):
        entry = item.entry
        if entry.get("kind") != kind or entry.get("language") != language:
            continue
        recording = Recording.of(item)
        if recording.duration_s is None:
            raise ValueError(f"{item.where}: a {kind} entry needs duration_s; add it")
        found.append(recording)  # metadata only: each trial reads its own audio
    if not found:
        raise ValueError(
            f'{folder / MANIFEST_NAME} lists no entries with kind "{kind}" and language '
            f'"{language}"; add some, or point --data at another folder'
        )
    return sorted(found, key=lambda u: u.name)


def select_utterances(pool: Sequence[Utterance], n: int, seed: int) -> list[Utterance]:
    """``n`` utterances from ``pool`` in a seeded order.

    The pool is shuffled with ``random.Random(seed)`` and taken in that order; when ``n``
    exceeds the pool, it is reshuffled (same generator) for each further pass, so every clip is
    used once per pass. Same pool, ``n`` and seed → same list.

    Raises:
        ValueError: ``n`` < 1 or an empty pool.
    """
    if n < 1:
        raise ValueError(f"the latency eval needs at least 1 utterance, got n={n}")
    if not pool:
        raise ValueError("no utterances to choose from")
    rng = random.Random(seed)
    chosen: list[Utterance] = []
    while len(chosen) < n:
        order = list(pool)
        rng.shuffle(order)
        chosen.extend(order)
    return chosen[:n]


def plan(opts: LatencyOptions) -> Iterator[Trial[LatencyTrial]]:
    """One trial per drawn utterance, in the seeded order.

    The trial id is ``"<position>-<manifest path>"`` (1-based), unique when the pool is
    cycled; the scripted LLM of each trial is seeded from the run seed and that id.

    Raises:
        ValueError: bad options or data (the message names the fix).
    """
    if opts.gap_ms <= opts.eot_silence_ms:
        raise ValueError(
            f"gap {opts.gap_ms:g} ms must be longer than the end-of-turn silence "
            f"{opts.eot_silence_ms:g} ms, or the turn never ends inside the track; raise --gap-ms"
        )
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    pool = load_manifest(data_dir, language=opts.language)
    n = opts.n
    if opts.quick:
        pool = [u for u in pool if (u.duration_s or 0.0) <= QUICK_MAX_DURATION_S] or pool
        n = min(n, QUICK_N)
    for index, utterance in enumerate(select_utterances(pool, n, opts.seed)):
        trial_id = f"{index + 1:04d}-{utterance.name}"
        yield Trial(index, trial_id, trial_seed(opts.seed, trial_id), LatencyTrial(utterance))
