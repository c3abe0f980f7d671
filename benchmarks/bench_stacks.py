"""TTFAT terms per model stack, and the local stack's latency levers, side by side in one run.

Run: ``python benchmarks/bench_stacks.py [--data DIR] [--clips a.wav b.wav ...] [--gap-ms 6000]
[--simulated-clock] [--out out/bench-stacks]``

One caller track is built from the clips (manifest transcripts as references, ``--gap-ms`` of
silence after each) and the same track is run through ``earshot converse`` once per
configuration, in real time by default:

* ``fast`` (pocketsphinx + scripted LLM + espeak-ng), ``neural`` (Whisper + scripted + Piper)
  and ``local`` (Whisper + llama.cpp + Piper): p50 of every TTFAT term, and the WER of the
  turns' transcripts against the references;
* ``local, no early final``: the Whisper final decoded only at end-of-turn, for the
  ``stt_finalization`` ratio;
* ``local, no first clause``: Piper speaks whole sentences, for the ``tts_first_audio`` ratio;
* ``llm_ttft`` of turn 1 against later turns in the ``local`` run (the KV-cache reuse).

Targets on 2 cores (issue 9): early final → ``stt_finalization`` p50 ≤ 150 ms;
``tts_first_audio`` p50 ≤ 150 ms with first-clause synthesis; ``llm_ttft`` p50 ≤ 300 ms after
the first turn. Prints a table and writes ``results.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ
from earshot.audio.io import read_audio, write_wav_atomic
from earshot.converse import ConverseOptions, converse
from earshot.metrics.turn import TERMS
from earshot.stacks import STACKS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""The data set beside the repository (``../shared/data``); pass ``--data`` for another."""
DEFAULT_CLIPS = (
    "speech/lhotse_librispeech_2412-153948-0000.wav",
    "speech/lhotse_ljspeech_LJ002-0035.wav",
    "speech/realtimestt_ljspeech_LJ001-0006.wav",
    "speech/lhotse_ljspeech_LJ002-0020.wav",
)
"""English clips with transcripts that are not bundled in ``src/earshot/data``."""


@dataclass(slots=True)
class Config:
    label: str
    stack: str
    stt_options: dict[str, Any] = field(default_factory=dict)
    tts_options: dict[str, Any] = field(default_factory=dict)


CONFIGS = (
    Config("fast", "fast"),
    Config("neural", "neural"),
    Config("local", "local"),
    Config("local, no early final", "local", stt_options={"early_final": False}),
    Config("local, no first clause", "local", tts_options={"first_clause": False}),
)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hypothesis, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def build_track(data: Path, clips: list[str], gap_ms: float, out: Path) -> tuple[Path, list[str]]:
    """Concatenate the clips with silence; return the WAV path and the reference transcripts."""
    manifest = {
        e["path"]: e
        for e in (json.loads(line) for line in (data / "manifest.jsonl").open(encoding="utf-8"))
    }
    gap = np.zeros(int(gap_ms * SAMPLE_RATE_HZ / 1000), dtype=np.int16)
    parts = [np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.int16)]
    references = []
    for clip in clips:
        parts += [read_audio(data / clip), gap]
        references.append(str(manifest[clip]["transcript"]))
    path = out / "caller.wav"
    write_wav_atomic(path, np.concatenate(parts), SAMPLE_RATE_HZ)
    return path, references


def p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def run(
    config: Config, caller: Path, references: list[str], out: Path, sim: bool
) -> dict[str, Any]:
    stack = STACKS[config.stack]
    result = converse(
        ConverseOptions(
            input_path=caller,
            out_dir=out / re.sub(r"\W+", "-", config.label),
            stt=stack.stt,
            llm=stack.llm,
            tts=stack.tts,
            stt_options=config.stt_options,
            tts_options=config.tts_options,
            simulated_clock=sim,
            quiet=True,
        )
    )
    turns = [t for t in result.state.turns if t.complete]
    per_turn = [t.terms_ms or {} for t in turns]
    terms = {name: p50([d[name] for d in per_turn if name in d]) for name in TERMS}
    terms["ttfat"] = p50([v for t in turns if (v := t.ttfat_ms) is not None])
    hypothesis = " ".join(t.user_text for t in result.state.turns)
    reference = " ".join(references)
    errors = edit_distance(words(reference), words(hypothesis))
    ttft = [d["llm_ttft"] for d in per_turn if "llm_ttft" in d]
    return {
        "config": config.label,
        "components": result.components,
        "turns": len(turns),
        "p50_ms": terms,
        "wer": round(errors / len(words(reference)), 3),
        "user_texts": [t.user_text for t in result.state.turns],
        "llm_ttft_turn1_ms": round(ttft[0], 1) if ttft else None,
        "llm_ttft_later_p50_ms": p50(ttft[1:]),
        "early_final": [t.extra.get("stt_early_final") for t in turns],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="folder with manifest.jsonl")
    parser.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS))
    parser.add_argument("--gap-ms", type=float, default=6000.0)
    parser.add_argument("--simulated-clock", action="store_true")
    parser.add_argument("--only", nargs="+", help="run only these config labels")
    parser.add_argument("--out", type=Path, default=Path("out/bench-stacks"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    caller, references = build_track(args.data, args.clips, args.gap_ms, args.out)
    results = [
        run(c, caller, references, args.out, args.simulated_clock)
        for c in CONFIGS
        if not args.only or c.label in args.only
    ]
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    names = ["ttfat", "endpointing", "stt_finalization", "llm_ttft", "sentence_aggregation"]
    names += ["tts_first_audio", "jitter_buffer", "engine_overhead"]
    print(f"{'config':26s} {'WER':>5s} " + " ".join(f"{n[:12]:>12s}" for n in names))
    for r in results:
        cells = " ".join(f"{r['p50_ms'].get(n) or 0:12.0f}" for n in names)
        print(f"{r['config']:26s} {r['wer']:5.3f} {cells}")
    by = {r["config"]: r for r in results}

    def ratio(a: str, b: str, term: str) -> str:
        if a not in by or b not in by:
            return "n/a"
        x, y = by[a]["p50_ms"][term], by[b]["p50_ms"][term]
        return f"{x:.0f} / {y:.0f} ms = {x / y:.2f}" if x is not None and y else "n/a"

    print(
        "stt_finalization p50, early final / none:",
        ratio("local", "local, no early final", "stt_finalization"),
    )
    print(
        "tts_first_audio p50, first clause / whole sentence:",
        ratio("local", "local, no first clause", "tts_first_audio"),
    )
    if "local" in by:
        loc = by["local"]
        print(
            f"llm_ttft turn 1: {loc['llm_ttft_turn1_ms']} ms, later turns p50: "
            f"{loc['llm_ttft_later_p50_ms']} ms"
        )


if __name__ == "__main__":
    main()
