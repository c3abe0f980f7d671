"""`earshot eval stt`: word error rate of each STT backend on the manifest's transcripts.

Every ``speech`` recording of the data folder's ``manifest.jsonl`` (default: the bundled
``earshot/data``) with a ``transcript`` in ``--language`` is recognised by every backend named
with ``--stt`` (default: every backend `earshot.stt.make_stt` knows, `earshot.stt.STT_NAMES`),
one harness trial per (recording, backend), and scored with jiwer
(`earshot.evals.stt_score`). ``--mode streaming`` (default) pushes the audio in 20 ms frames
as the live loop does; ``--mode batch`` gives the backend the whole recording. Each trial
builds a fresh recognizer, so a score never depends on the recordings decoded before it (and
``--ray`` gives the same JSON).

Outputs in ``--out``: ``stt.json`` (settings, per-backend corpus and mean WER, every
recording's hypothesis and error counts), ``stt.txt`` (the table), ``stt.png`` (WER per
recording) and ``stt.trials.jsonl``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from earshot.evals.harness import (
    Evaluation,
    Trial,
    add_common_arguments,
    common_settings,
    run_cli,
    trial_seed,
)
from earshot.evals.manifest import Recording, bundled_data_dir, iter_manifest
from earshot.evals.stt_report import report
from earshot.evals.stt_score import FRAME_MS, MODES, SttOptions, word_errors

HELP = "word error rate of each STT backend on the manifest's transcripts (jiwer)"
"""One-line help shown by ``earshot eval --help``."""


@dataclass(frozen=True, slots=True)
class SttTrial:
    """One recording for one backend."""

    backend: str
    recording: Recording


def plan(opts: SttOptions) -> Iterator[Trial[SttTrial]]:
    """Every (recording, backend) pair, recordings in manifest order.

    Raises:
        ValueError: an unknown backend, or no recording with a transcript in the language.
    """
    from earshot.stt import STT_NAMES

    unknown = [b for b in opts.backends if b not in STT_NAMES]
    if unknown or not opts.backends:
        raise ValueError(
            f"unknown STT backend(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(STT_NAMES)}"
        )
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    index = 0
    for item in iter_manifest(data_dir):  # streamed: a corpus is never loaded whole
        if item.entry["kind"] != "speech" or item.entry.get("language") != opts.language:
            continue
        recording = Recording.of(item)
        if not recording.transcript.strip():
            continue
        for backend in opts.backends:
            trial_id = f"{backend}:{recording.name}"
            params = SttTrial(backend, recording)
            yield Trial(index, trial_id, trial_seed(opts.seed, trial_id), params)
            index += 1
    if index == 0:
        raise ValueError(
            f"no speech recording in {data_dir} has a transcript in language {opts.language!r}; "
            "add transcripts to its manifest.jsonl or choose --language"
        )


def recognize(backend: str, pcm: Any, mode: str) -> str:
    """The backend's text for a whole recording (int16 16 kHz mono), streamed or at once."""
    from earshot.audio.frames import samples_per_frame
    from earshot.stt import make_stt

    recognizer = make_stt(backend)
    try:
        if mode == "batch":
            transcribe = getattr(recognizer, "transcribe", None)
            if not callable(transcribe):
                raise ValueError(
                    f"the {backend} backend has no batch transcribe(); use --mode streaming"
                )
            return str(transcribe(pcm).text)
        step = samples_per_frame(FRAME_MS)
        recognizer.start()
        for start in range(0, len(pcm), step):
            recognizer.push_audio(pcm[start : start + step])
        return recognizer.finish().text
    finally:
        close = getattr(recognizer, "close", None)  # backends with worker threads (Whisper)
        if callable(close):
            close()


def run_trial(opts: SttOptions, trial: Trial[SttTrial]) -> dict[str, Any]:
    """Recognise one recording with one backend and score it."""
    from earshot.audio.frames import SAMPLE_RATE_HZ
    from earshot.audio.io import read_audio

    backend, rec = trial.params.backend, trial.params.recording
    hypothesis = recognize(backend, read_audio(rec.path, SAMPLE_RATE_HZ), opts.mode)
    return {
        "backend": backend,
        "path": rec.name,
        "reference": rec.transcript,
        "hypothesis": hypothesis,
        **word_errors(rec.transcript, hypothesis),
    }


def _describe(result: Mapping[str, Any]) -> str:
    return f"WER {100 * result['wer']:.1f} % ({result['reference_words']} words)"


EVALUATION: Evaluation[SttOptions, SttTrial] = Evaluation(
    name="stt", plan=plan, run_trial=run_trial, report=report, describe=_describe
)
"""`earshot eval stt` as the harness runs it: one trial per (recording, backend)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval stt`'s flags on ``parser``."""
    from earshot.stt import STT_NAMES

    add_common_arguments(parser, default_out="out/eval-stt", seed_help="recorded only")
    parser.add_argument(
        "--stt",
        action="append",
        metavar="NAME",
        help=f"a backend to score (repeatable; default: all of {', '.join(STT_NAMES)})",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="streaming",
        help="streaming: 20 ms frames as the live loop; batch: the whole recording at once",
    )
    parser.add_argument(
        "--language", default="en", help="manifest language of the recordings (default en)"
    )


def run(args: argparse.Namespace) -> int:
    """`earshot eval stt`: 0 done, 1 nothing scored or a trial failed, 2 bad input."""
    from earshot.stt import STT_NAMES

    opts = SttOptions(
        backends=tuple(dict.fromkeys(args.stt or STT_NAMES)),
        data_dir=args.data,
        out_dir=args.out,
        language=args.language,
        mode=args.mode,
        seed=args.seed,
        quiet=args.quiet,
    )
    return run_cli(EVALUATION, opts, common_settings(args))
