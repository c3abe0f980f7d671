"""Benchmark `--ray`: a real evaluation on the bundled data, locally and as Ray tasks.

Run: ``python benchmarks/bench_ray.py [--n 8] [--workers 2]`` (needs ``earshot[ray]``).

The evaluation is ``earshot eval latency --exact-timing`` over ``--n`` bundled utterances (one
trial = one utterance through its own session with the real Silero VAD, pocketsphinx and
espeak-ng; the LLM is the scripted one). Both runs happen side by side in this one process:

1. local: every trial in this process, one after another;
2. Ray: a local Ray with ``--workers`` CPUs (``ray.init(num_cpus=N)``), timed separately for its
   start-up and for the run itself (trials shipped as tasks, results collected as they finish).

Reported: wall time of each, the local / Ray ratio (with and without Ray's start-up), trials per
second per worker (what to size a cluster by), and whether the two ``latency.json`` agree
(identical but for ``played_samples``: espeak-ng carries state between syntheses in a process,
see tests/evals/test_eval_ray.py). Times are wall clock (``time.perf_counter``) on a machine
that may be shared; compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from earshot.evals.harness import CommonSettings, RaySettings, execute
from earshot.evals.harness.runner import start_ray
from earshot.evals.latency import EVALUATION, LatencyOptions


def _strip_played(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _strip_played(v) for k, v in doc.items() if k != "played_samples"}
    if isinstance(doc, list):
        return [_strip_played(v) for v in doc]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="utterances (trials), default 8")
    parser.add_argument("--workers", type=int, default=2, help="local Ray CPUs, default 2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        docs = []
        timings: dict[str, float] = {}
        for name in ("local", "ray"):
            out = Path(tmp) / name
            opts = LatencyOptions(n=args.n, seed=0, exact_timing=True, out_dir=out, quiet=True)
            ray = None
            if name == "ray":
                ray = RaySettings(address=None, num_cpus=args.workers)
                started = time.perf_counter()
                start_ray(ray)
                timings["ray_start_s"] = time.perf_counter() - started
            started = time.perf_counter()
            done = execute(EVALUATION, opts, CommonSettings(out, quiet=True, ray=ray))
            timings[f"{name}_s"] = time.perf_counter() - started
            assert not done.run.failure and len(done.run.done) == args.n, done.run.failure
            docs.append(json.loads((out / "latency.json").read_text(encoding="utf-8")))
    local_s, ray_s, start_s = timings["local_s"], timings["ray_s"], timings["ray_start_s"]
    same = _strip_played(docs[0]) == _strip_played(docs[1])
    print(f"eval latency --exact-timing, {args.n} trials, {os.cpu_count()} CPUs on this machine")
    print(f"  local (1 process):       {local_s:7.1f} s   {args.n / local_s:.3f} trials/s")
    print(
        f"  Ray ({args.workers} workers), run:    {ray_s:7.1f} s   "
        f"{args.n / ray_s / args.workers:.3f} trials/s per worker"
    )
    print(f"  Ray start-up:            {start_s:7.1f} s")
    print(f"  local / Ray (run only):  {local_s / ray_s:7.2f}x")
    print(f"  local / Ray (+ start-up):{local_s / (ray_s + start_s):7.2f}x")
    print(f"  same JSON (but played_samples): {same}")


if __name__ == "__main__":
    main()
