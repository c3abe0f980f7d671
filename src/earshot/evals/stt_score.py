"""`earshot eval stt`: its options and the pure scorer (word error rate with jiwer).

WER = (substitutions + deletions + insertions) / reference words, after both texts are
lower-cased, stripped of punctuation and split on whitespace (jiwer's transforms). The corpus
WER of a backend sums the errors and the reference words over its recordings (it is not the
mean of per-recording WERs, which over-weights short clips); both are reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Mode = Literal["streaming", "batch"]
MODES: tuple[str, ...] = ("streaming", "batch")

FRAME_MS = 20
"""Streaming mode pushes the recording in frames of this many ms (the session's default)."""


@dataclass(frozen=True, slots=True)
class SttOptions:
    """Everything `earshot eval stt` takes.

    Attributes:
        backends: STT backend names (`earshot.stt.make_stt`), in report order.
        data_dir: folder with ``manifest.jsonl``; ``None`` uses the bundled recordings.
        out_dir: where the outputs go.
        language: manifest language of the recordings to score.
        mode: ``streaming`` (audio pushed in `FRAME_MS` frames, as the live loop does) or
            ``batch`` (the whole recording at once, where the backend has ``transcribe``).
        seed: recorded only (the evaluation draws nothing at random).
        quiet: no progress lines.
    """

    backends: tuple[str, ...]
    data_dir: Path | None = None
    out_dir: Path = Path("out/eval-stt")
    language: str = "en"
    mode: Mode = "streaming"
    seed: int = 0
    quiet: bool = False


def word_errors(reference: str, hypothesis: str) -> dict[str, int | float]:
    """WER of ``hypothesis`` against ``reference`` and its error counts (jiwer).

    Returns:
        ``{"wer", "reference_words", "hits", "substitutions", "deletions", "insertions"}``.

    Raises:
        ValueError: ``reference`` has no words after normalisation.
    """
    import jiwer

    transform = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),  # type: ignore[no-untyped-call]
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    if not reference.strip() or not transform(reference)[0]:
        raise ValueError("the reference transcript has no words; give one or drop the entry")
    out = jiwer.process_words(
        reference, hypothesis, reference_transform=transform, hypothesis_transform=transform
    )
    words = out.hits + out.substitutions + out.deletions
    return {
        "wer": round(float(out.wer), 6),
        "reference_words": int(words),
        "hits": int(out.hits),
        "substitutions": int(out.substitutions),
        "deletions": int(out.deletions),
        "insertions": int(out.insertions),
    }


def summarize(results: Sequence[Mapping[str, Any]], backends: Sequence[str]) -> dict[str, Any]:
    """Per backend: recordings scored, corpus WER, mean and worst per-recording WER.

    Returns:
        backend → ``{"recordings", "reference_words", "errors", "corpus_wer", "mean_wer",
        "max_wer"}`` (the WERs ``None`` for a backend with no recording scored).
    """
    out: dict[str, Any] = {}
    for backend in backends:
        mine = [r for r in results if r["backend"] == backend]
        words = sum(int(r["reference_words"]) for r in mine)
        errors = sum(int(r["substitutions"] + r["deletions"] + r["insertions"]) for r in mine)
        wers = [float(r["wer"]) for r in mine]
        out[backend] = {
            "recordings": len(mine),
            "reference_words": words,
            "errors": errors,
            "corpus_wer": round(errors / words, 6) if words else None,
            "mean_wer": round(sum(wers) / len(wers), 6) if wers else None,
            "max_wer": round(max(wers), 6) if wers else None,
        }
    return out
