"""The speculation key of the lever evaluation on the real recognizer: with `SINGLE_PASS_STT`
PocketSphinx's partial, once it has held into the pause, is its final transcript — the reason
preemptive generation's speculations commit — while both passes on revise it at `finish`."""

from __future__ import annotations

import numpy as np
import pytest

from earshot.evals.levers_runs import SINGLE_PASS_STT
from earshot.evals.manifest import bundled_data_dir
from earshot.evals.tracks import load_clips
from earshot.levers.normalize import normalize_transcript
from earshot.stt import make_stt

pytest.importorskip("pocketsphinx")

FRAME = 320  # 20 ms at 16 kHz


def _partial_then_final(options: dict[str, object], pcm: np.ndarray) -> tuple[str, str]:
    stt = make_stt("pocketsphinx", **options)
    stt.start()
    for i in range(0, pcm.size, FRAME):
        stt.push_audio(pcm[i : i + FRAME])
    silence = np.zeros(FRAME, dtype=np.int16)
    partial = [stt.push_audio(silence) for _ in range(5)][-1]  # 100 ms into the pause
    return normalize_transcript(partial), normalize_transcript(stt.finish().text)


CLIPS = (
    "lhotse_ami_ES2011a_headset0_40-46s.wav",
    "picovoice_leopard_test_en.wav",
    "realtimestt_ljspeech_LJ001-0004.wav",
)


def test_single_pass_partial_held_into_the_pause_is_the_final() -> None:
    paths = [bundled_data_dir() / "speech" / name for name in CLIPS]
    revised = 0
    for pcm in load_clips(paths):
        partial, final = _partial_then_final(dict(SINGLE_PASS_STT), pcm)
        assert partial and partial == final
        default_partial, default_final = _partial_then_final({}, pcm)
        revised += default_partial != default_final
    # With both passes on, finish() rewrites the partial: a speculation on it would restart.
    assert revised >= 2
