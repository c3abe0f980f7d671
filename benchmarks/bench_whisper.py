"""Whisper decode cost and WER: the short encoder window against faster-whisper's 30 s windows.

Run: ``python benchmarks/bench_whisper.py [--data DIR]``

Every English recording with a transcript in ``DIR/manifest.jsonl`` (default: the bundled
recordings) is transcribed whole, alternately with the window cut to the audio + 2 s
(`earshot.stt.whisper.WhisperRecognizer`'s default) and with full 30 s windows, in one process.
Reported: pooled WER (lower case, punctuation dropped, numbers not normalised) and the median
decode cost, with the ratio short / full.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from earshot.audio.io import read_audio
from earshot.evals.manifest import bundled_data_dir
from earshot.stt.whisper import WhisperRecognizer


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def edits(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hypothesis, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder with manifest.jsonl")
    args = parser.parse_args()
    data = args.data or bundled_data_dir()
    clips = []
    for line in (data / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        english = entry.get("kind") == "speech" and entry.get("language") == "en"
        if english and entry.get("transcript"):
            clips.append((read_audio(data / entry["path"]), str(entry["transcript"])))
    models = {"short": WhisperRecognizer(), "full": WhisperRecognizer(context_margin_ms=None)}
    for model in models.values():
        model.load()
    errors = dict.fromkeys(models, 0)
    costs: dict[str, list[float]] = {name: [] for name in models}
    total = 0
    for pcm, reference in clips:
        total += len(words(reference))
        for name, model in models.items():
            result = model.transcribe(pcm)
            errors[name] += edits(words(reference), words(result.text))
            costs[name].append(result.decode_ms[0])
    print(f"{len(clips)} clips, {total} reference words")
    for name in models:
        print(
            f"{name:6s} WER {errors[name] / total:.3f}  "
            f"decode p50 {statistics.median(costs[name]):.0f} ms"
        )
    ratio = statistics.median(costs["short"]) / statistics.median(costs["full"])
    print(f"decode cost short / full: {ratio:.2f}")


if __name__ == "__main__":
    main()
