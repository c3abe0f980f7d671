"""`earshot eval bargein`'s plan: the scenarios to run, from a data folder's recordings.

The plan reads the folder's speech and noise clips (a handful: questions, cut-ins, noise
pieces) and synthesizes the backchannels, then lays out every scenario
(`earshot.evals.bargein_scenarios.plan_scenarios`) as one harness trial.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from earshot.evals.bargein_model import (
    QUICK_MAX_SOUND_MS,
    BargeInOptions,
    packaged_rules_path,
)
from earshot.evals.bargein_scenarios import (
    BACKCHANNEL_VOICE,
    MIN_CUT_IN_MS,
    Clip,
    Scenario,
)
from earshot.evals.harness import Trial, trial_seed
from earshot.evals.manifest import bundled_data_dir

if TYPE_CHECKING:
    from earshot.tts.base import Synthesizer


@dataclass(frozen=True, slots=True)
class BargeInTrial:
    """One scenario as a trial, with the synthesized length of the reply it cuts into (ms)."""

    scenario: Scenario
    reply_ms: float


@functools.cache
def reply_info() -> tuple[str, float]:
    """The long scripted reply and its synthesized duration (ms), chunked as the runner does.

    Cached per process: espeak-ng is deterministic, so every process gets the same answer.
    """
    from earshot.tts import make_tts

    return _reply_info(make_tts("espeak"))


def _reply_info(tts: Synthesizer) -> tuple[str, float]:
    import numpy as np

    from earshot.audio.frames import samples_to_ms
    from earshot.llm.scripted import load_rules
    from earshot.text.chunker import SentenceChunker

    rules = load_rules(packaged_rules_path())
    default = rules.default
    text = default[0] if isinstance(default, list) else default
    chunker = SentenceChunker()
    samples = 0
    for sentence in [*chunker.push(text), *chunker.flush()]:
        samples += int(sum(np.size(c.audio) for c in tts.synthesize(sentence)))
    return text, samples_to_ms(samples)


def _clips(
    opts: BargeInOptions, data_dir: Path
) -> tuple[list[Clip], list[Clip], list[Clip], list[Clip]]:
    """Questions, cut-ins, noise pieces and synthesized backchannels for this run."""
    from earshot.evals.bargein_scenarios import (
        load_noise_pieces,
        load_speech_clips,
        synthesize_backchannels,
    )
    from earshot.tts import make_tts

    speech = load_speech_clips(data_dir, opts.language)
    if opts.quick:
        short = [c for c in speech if c.sound_ms <= QUICK_MAX_SOUND_MS]
        speech = short or speech
    by_length = sorted(speech, key=lambda c: (c.sound_ms, c.name))
    questions = by_length[: 1 if opts.quick else max(1, min(3, len(by_length) // 2))]
    cut_ins = [c for c in speech if c.sound_ms >= MIN_CUT_IN_MS]
    if not cut_ins:
        raise ValueError(
            f"no speech recording in {data_dir} has {MIN_CUT_IN_MS:g} ms of sound for a cut-in; "
            "add longer utterances"
        )
    noises = load_noise_pieces(data_dir, random.Random(opts.seed))
    backchannels = synthesize_backchannels(make_tts("espeak", voice=BACKCHANNEL_VOICE))
    return questions, cut_ins, noises, backchannels


def plan(opts: BargeInOptions) -> list[Trial[BargeInTrial]]:
    """Every scenario of the run, in run order, as trials.

    Raises:
        ValueError: bad offsets, or the folder lacks what a scenario needs (the message names
            the fix).
        AudioFileError: a recording cannot be read.
    """
    from earshot.evals.bargein_scenarios import plan_scenarios

    if any(o <= 0 for o in opts.offsets_ms):
        raise ValueError(f"offsets must be > 0 ms after the reply starts, got {opts.offsets_ms}")
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    questions, cut_ins, noises, backchannels = _clips(opts, data_dir)
    _, reply_ms = reply_info()
    scenarios = plan_scenarios(
        questions, cut_ins, noises, backchannels, opts.offsets_ms, opts.seed, opts.quick
    )
    return [
        Trial(i, s.scenario_id, trial_seed(opts.seed, s.scenario_id), BargeInTrial(s, reply_ms))
        for i, s in enumerate(scenarios)
    ]
