"""`--ray`: the same evaluation as Ray tasks on a local 2-CPU Ray gives the local run's JSON.

Real components (Silero, pocketsphinx, espeak-ng) on `eval latency --quick --exact-timing`
(compute free on the simulated clock, so every mark is a function of the audio). One known
difference is allowed and bounded: espeak-ng keeps its pitch-flutter state between syntheses
in a process, so a reply synthesized in a Ray worker (fresh process) can be a little longer or
shorter than the same reply synthesized after other syntheses in this process (a few samples
after one trial, 149 of 75,408 after the rest of the test suite); it shows in
``played_samples`` only, never in a mark, a term or a transcript.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from earshot.evals.harness import CommonSettings, RaySettings, execute
from earshot.evals.latency import EVALUATION, LatencyOptions

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'earshot[ray]'")

ESPEAK_LENGTH_SLACK = 0.01
"""How far (as a share of its length) espeak-ng's carried-over state may move a reply's length;
0.2 % was the most seen here."""


def _without_played_samples(doc: Any, played: list[int]) -> Any:
    if isinstance(doc, dict):
        if "played_samples" in doc:
            played.append(int(doc["played_samples"]))
        return {
            k: _without_played_samples(v, played) for k, v in doc.items() if k != "played_samples"
        }
    if isinstance(doc, list):
        return [_without_played_samples(v, played) for v in doc]
    return doc


def test_ray_gives_the_local_json(tmp_path: Path) -> None:
    docs, played = [], []
    for name, settings in (
        ("local", None),
        ("ray", RaySettings(address=None, num_cpus=2)),
    ):
        out = tmp_path / name
        opts = LatencyOptions(n=2, seed=3, quick=True, exact_timing=True, out_dir=out, quiet=True)
        done = execute(EVALUATION, opts, CommonSettings(out, quiet=True, ray=settings))
        assert not done.run.failure and not done.run.interrupted and len(done.run.done) == 2
        lengths: list[int] = []
        docs.append(
            _without_played_samples(json.loads((out / "latency.json").read_text()), lengths)
        )
        played.append(lengths)
    assert not ray.is_initialized()  # the harness shut down the Ray it started
    local, on_ray = docs
    assert local["counts"]["complete_turns"] >= 2
    assert on_ray == local
    assert len(played[0]) == len(played[1]) > 0
    for a, b in zip(*played, strict=True):
        assert abs(a - b) <= ESPEAK_LENGTH_SLACK * a
