"""`earshot eval endpointing` (issue 4): false cut-offs and endpointing delay on real recordings.

Real components throughout: Silero and WebRTC VAD, pocketsphinx, the bundled recordings and
noises; the session cross-check also runs espeak-ng and the scripted LLM (simulated by design)
on a `SimulatedClock(charge_compute=False)`, so its marks are a function of the audio alone.
The only fakes are a recording recognizer and hand-written decisions for the pure feeding and
scoring rules (`LaneStt`, `score_lane`), where exact expectations need exact inputs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from earshot.audio.frames import Pcm16
from earshot.clock import SimulatedClock
from earshot.evals import cli as eval_cli
from earshot.evals import endpointing_replay, endpointing_trials
from earshot.evals.endpointing import (
    EndpointingOptions,
    EndpointingRun,
    run_endpointing,
)
from earshot.evals.endpointing_data import build_turn
from earshot.evals.endpointing_replay import (
    Configuration,
    EndpointerSpec,
    Lane,
    LaneStt,
    ReplaySettings,
    replay,
    score_lane,
)
from earshot.evals.endpointing_trials import (
    Condition,
    Trial,
    load_data,
    load_speech,
    make_turn,
    trial_audio,
)
from earshot.evals.manifest import bundled_data_dir, read_manifest
from earshot.llm import make_llm
from earshot.session.config import SessionConfig
from earshot.session.listener import Listener
from earshot.session.session import Session
from earshot.stt import make_stt
from earshot.stt.base import Transcript
from earshot.stt.pocketsphinx import PocketsphinxRecognizer
from earshot.testing import ScriptedVad
from earshot.tts import make_tts
from earshot.turns.endpointer import FixedEndpointer
from earshot.vad import make_vad

FRAME_MS = 20.0

SILERO_END_LAG_MS = 200.0
"""Bound on Silero's voiced end after the last word on clean read speech (the segmenter adds a
hangover frame to Silero's 32 ms window); 40–140 ms measured on the bundled recordings."""

SHORT_CLIPS = ("realtimestt_ljspeech_LJ001-0002.wav", "realtimestt_ljspeech_LJ001-0008.wav")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> EndpointingRun:
    out = tmp_path_factory.mktemp("eval-endpointing")
    return run_endpointing(
        EndpointingOptions(
            out_dir=out,
            quick=True,
            quiet=True,
            pauses="inserted",
            fixed_ms=(200.0, 300.0, 500.0, 800.0, 1000.0),
            policies=("smart",),
            observe=False,
        )
    )


def _fixed_ms(label: str) -> float | None:
    match = re.match(r"fixed (\d+(?:\.\d+)?) ms", label)
    return float(match.group(1)) if match else None


# --------------------------------------------------------------------------- quick run


def test_quick_run_writes_table_json_and_chart(quick: EndpointingRun) -> None:
    out = quick.options.out_dir
    doc = json.loads((out / "endpointing.json").read_text(encoding="utf-8"))
    assert doc["eval"] == "endpointing" and doc["interrupted"] is False
    assert doc["counts"]["planned_trials"] == doc["counts"]["turns"] == 6  # 3 clips x 2 conditions
    labels = [f"fixed {ms} ms · silero" for ms in (200, 300, 500, 800, 1000)] + ["smart · silero"]
    assert doc["configurations"] == labels
    assert {t["noise"] is None for t in doc["turns"]} == {True, False}
    for turn in doc["turns"]:
        assert set(turn["results"]) == set(labels)
        assert turn["true_end_source"] == "stt" and turn["words"]
        assert 1 <= len(turn["inserted_pauses"]) <= 2
        assert all(300 <= p["ms"] <= 900 for p in turn["inserted_pauses"])
    for label in labels:
        groups = doc["summary"][label]
        assert groups["quiet"]["turns"] == 3 and groups["noise"]["turns"] == 3
        assert any(g.startswith("noise: ") for g in groups) and any(
            g.startswith("SNR") for g in groups
        )
    assert doc["goal"] == []  # no model policy in this run
    text = (out / "endpointing.txt").read_text(encoding="utf-8")
    assert "cut-offs/turn" in text and "smart · silero" in text
    image = imread(out / "endpointing.png")
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_fixed_delay_in_quiet_is_threshold_plus_vad_lag(quick: EndpointingRun) -> None:
    """In quiet a fixed threshold ends the turn exactly its threshold after the VAD's voiced
    end (to the frame), which itself lags the last word by Silero's end lag."""
    checked = 0
    for turn in quick.turns:
        if turn["noise"] is not None:
            continue
        for label, r in turn["results"].items():
            threshold = _fixed_ms(label)
            if threshold is None:
                continue
            assert not r["missed"] and r["delay_ms"] is not None
            ending = next(d for d in r["decisions"] if d["decided_at_ms"] >= turn["true_end_ms"])
            silence = ending["decided_at_ms"] - ending["speech_end_ms"]
            assert threshold <= silence < threshold + FRAME_MS
            lag = r["vad_end_lag_ms"]
            assert 0 <= r["delay_ms"] - threshold - lag < FRAME_MS
            assert -FRAME_MS <= lag <= SILERO_END_LAG_MS
            checked += 1
    assert checked == 3 * 5


def test_false_cutoffs_lie_inside_turns_and_fall_with_threshold(quick: EndpointingRun) -> None:
    checked = 0
    for turn in quick.turns:
        for r in turn["results"].values():
            for cut in r["false_cutoffs"]:
                assert turn["onset_ms"] <= cut["decided_at_ms"] < turn["true_end_ms"]
        # In quiet, 200 ms ends the turn inside the first inserted pause of 400 ms or more
        # (digital silence; the VAD's end lag takes at most ~150 ms of it) that follows enough
        # speech to make a turn (a shorter stretch is discarded, as the runtime does).
        first = next(
            (
                p
                for p in turn["inserted_pauses"]
                if p["ms"] >= 400 and p["start_ms"] >= turn["onset_ms"] + 400
            ),
            None,
        )
        if turn["noise"] is None and first is not None:
            cuts = turn["results"]["fixed 200 ms · silero"]["false_cutoffs"]
            assert any(
                c["speech_end_ms"] < first["start_ms"] + first["ms"]
                and c["decided_at_ms"] > first["start_ms"]
                and c["in"] == "inserted pause"
                for c in cuts
            ), turn["turn"]
            checked += 1
    assert checked >= 2
    fixed = [c for c in quick.configs if c.endpointer.kind == "fixed"]
    rates = [quick.summary[c.label]["all"]["false_cutoffs_per_turn"] for c in fixed]
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1]
    quiet_p50 = [quick.summary[c.label]["quiet"]["delay"]["p50_ms"] for c in fixed]
    assert quiet_p50 == sorted(quiet_p50) and len(set(quiet_p50)) == len(quiet_p50)


# --------------------------------------------------------------------------- unseen folder


def _unseen_folder(root: Path) -> Path:
    """A folder the harness has never seen: 2 bundled clips and 1 noise under new names."""
    data = bundled_data_dir()
    (root / "clips").mkdir(parents=True)
    names = []
    for i, clip in enumerate(SHORT_CLIPS):
        target = root / "clips" / f"caller_{i}.wav"
        shutil.copy(data / "speech" / clip, target)
        names.append(target.relative_to(root).as_posix())
    shutil.copy(data / "noise" / "livekit_keyboard-typing.wav", root / "typing.wav")
    lines = [
        {"path": names[0], "kind": "speech", "language": "en", "transcript": "one"},
        {"path": names[1], "kind": "speech", "language": "en"},
        {"path": names[1], "kind": "speech", "language": "de"},  # another language: skipped
        {"path": "typing.wav", "kind": "noise", "description": "office keys (laptop)"},
    ]
    text = "\n".join(json.dumps(line) for line in lines[:2]) + "\n\n"
    text += "\n".join(json.dumps(line) for line in lines[2:]) + "\n"
    (root / "manifest.jsonl").write_text(text, encoding="utf-8")
    return root


def test_unseen_folder_runs_and_the_same_seed_gives_identical_json(tmp_path: Path) -> None:
    folder = _unseen_folder(tmp_path / "data")

    def go(out: str) -> EndpointingRun:
        return run_endpointing(
            EndpointingOptions(
                out_dir=tmp_path / out,
                data_dir=folder,
                seed=7,
                vads=("silero", "webrtc"),
                snrs_db=(10.0,),
                quiet=True,
                pauses="inserted",
                fixed_ms=(200.0, 300.0, 500.0, 800.0, 1000.0),
                policies=("smart",),
                observe=False,
            )
        )

    first, second = go("a"), go("b")
    text_a = (tmp_path / "a" / "endpointing.json").read_text(encoding="utf-8")
    assert text_a == (tmp_path / "b" / "endpointing.json").read_text(encoding="utf-8")
    doc = json.loads(text_a)
    assert doc["settings"]["data_dir"] == str(folder)
    assert {t["source"] for t in doc["turns"]} == {"clips/caller_0.wav", "clips/caller_1.wav"}
    assert {t["condition"] for t in doc["turns"]} == {"quiet", "office keys @ 10 dB"}
    assert len(doc["configurations"]) == 12  # (5 fixed + smart) x 2 VADs
    assert "noise: office keys" in doc["summary"]["smart · webrtc"]
    assert "webrtc" in (tmp_path / "a" / "endpointing.txt").read_text(encoding="utf-8")
    assert imread(tmp_path / "b" / "endpointing.png").shape[0] > 100
    assert first.summary == second.summary


def test_seed_places_pauses_at_word_boundaries(tmp_path: Path) -> None:
    entries, _ = load_data(bundled_data_dir(), "en")
    entry = next(e for e in entries if e.name.endswith("LJ001-0004.wav"))
    clip = load_speech(entry.where, entry.name, entry.pcm, PocketsphinxRecognizer())
    assert len(clip.boundaries) >= 5 and clip.onset_sample < clip.end_sample <= len(clip.pcm)

    def placement(seed: int) -> tuple[tuple[int, int], ...]:
        turn = make_turn(clip, 0, seed, tail_ms=100.0)
        return tuple((p.start_sample, p.num_samples) for p in turn.pauses)

    assert placement(0) == placement(0)
    assert len({placement(seed) for seed in range(6)}) > 1
    lead = round(endpointing_trials.LEAD_MS * 16)
    for seed in range(6):
        shift = 0
        for start, length in placement(seed):
            assert start - lead - shift in clip.boundaries
            shift += length


# --------------------------------------------------------------------------- bad input


def _manifest(folder: Path, *lines: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(bundled_data_dir() / "speech" / SHORT_CLIPS[0], folder / "a.wav")
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_malformed_manifest_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = '{"path": "a.wav", "kind": "speech", "language": "en"}'
    with pytest.raises(ValueError, match=r"no manifest\.jsonl in"):
        read_manifest(tmp_path)
    cases = {
        "bad-json": ((good, '{"path": "a.wav", "kind": '), ":2: not valid JSON"),
        "missing-file": (
            ('{"path": "gone.wav", "kind": "noise"}',),
            ":1: .*gone.wav does not exist",
        ),
        "no-kind": ((good, '{"path": "a.wav"}'), ':2: the entry has no "kind"'),
        "not-object": (("[1, 2]",), ":1: expected a JSON object"),
    }
    for name, (lines, message) in cases.items():
        manifest = _manifest(tmp_path / name, *lines)
        with pytest.raises(ValueError, match=re.escape(str(manifest)) + message):
            read_manifest(manifest.parent)
    only_german = _manifest(tmp_path / "de", good.replace('"en"', '"de"'))
    with pytest.raises(ValueError, match='no "speech" entries with "language": "en"'):
        load_data(only_german.parent, "en")
    parser = argparse.ArgumentParser(prog="earshot")
    eval_cli.add_parser(parser.add_subparsers(dest="command"))
    bad = tmp_path / "bad-json"
    args = parser.parse_args(
        ["eval", "endpointing", "--data", str(bad), "--out", str(tmp_path / "o"), "--quiet"]
    )
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'manifest.jsonl'}:2" in err and "not valid JSON" in err
    assert not (tmp_path / "o").exists()


def test_cli_flags_and_help() -> None:
    parser = argparse.ArgumentParser(prog="earshot")
    eval_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            *("eval", "endpointing", "--vad", "silero", "webrtc", "--fixed-ms", "200,500"),
            *("--snrs", "10,0", "--quick", "--seed", "3", "--every-snr"),
        ]
    )
    assert args.vad == ["silero", "webrtc"] and args.fixed_ms == (200.0, 500.0)
    assert args.snrs == (10.0, 0.0) and args.quick and args.seed == 3 and args.every_snr
    for bad in (["--fixed-ms", "soon"], ["--vad", "vosk"], ["--snrs", ""]):
        with pytest.raises(SystemExit):
            parser.parse_args(["eval", "endpointing", *bad])
    with pytest.raises(ValueError, match="--seed must be >= 0"):
        EndpointingOptions(seed=-1).check()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import earshot.cli as c; c.main()",
            "eval",
            "endpointing",
            "--help",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--vad" in done.stdout and "--snrs" in done.stdout and "--data" in done.stdout


# --------------------------------------------------------------------------- the replay


def test_replay_decides_exactly_like_a_session(tmp_path: Path) -> None:
    """The replay's end-of-turn decisions are those of `Session` on the same track, for a
    fixed threshold and for the smart end-pointer reading pocketsphinx's partials."""
    entries, noises = load_data(bundled_data_dir(), "en")
    entry = next(e for e in entries if e.name.endswith(SHORT_CLIPS[0]))
    clip = load_speech(entry.where, entry.name, entry.pcm, PocketsphinxRecognizer())
    keyboard = next(n for n in noises if n.label == "keyboard typing")
    turn = trial_audio(Trial(clip, 0, Condition(keyboard, 10.0)), seed=0)
    configs = [
        Configuration("silero", EndpointerSpec("fixed", 500.0)),
        Configuration("silero", EndpointerSpec("smart")),
    ]
    lanes = replay(
        turn,
        configs,
        {"silero": make_vad("silero")},
        lambda: make_stt("pocketsphinx"),
        ReplaySettings.from_session(),
    )
    for lane in lanes:
        clock = SimulatedClock(charge_compute=False)
        endpointer = lane.config.endpointer.build(None)

        async def main(endpointer: Any = endpointer, clock: SimulatedClock = clock) -> Any:
            session = Session(
                SessionConfig(),
                clock,
                make_vad("silero"),
                make_stt("pocketsphinx"),
                make_llm("scripted", clock),
                make_tts("espeak"),
                endpointer,
            )
            return await session.run(turn.pcm)

        state = clock.run(main)
        in_session = [
            (h.turn.marks_ms["speech_end"], h.turn.marks_ms["end_of_turn"]) for h in state.responses
        ]
        replayed = [(d["speech_end_ms"], d["decided_at_ms"]) for d in lane.decisions]
        assert replayed, lane.config.label
        assert in_session[: len(replayed)] == replayed, lane.config.label


class RecordingRecognizer:
    """A recognizer that keeps what it is fed (to check `LaneStt` feeds like the session)."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def start(self) -> None:
        self.calls.append("start")

    def push_audio(self, pcm: Pcm16) -> str:
        self.calls.append(pcm.copy())
        return f"partial {len(self.calls)}"

    def finish(self) -> Transcript:
        return Transcript("")


def test_lane_stt_feeds_pre_roll_then_the_turn() -> None:
    frames = [np.full(320, k, dtype=np.int16) for k in range(50)]
    made: list[RecordingRecognizer] = []

    def factory() -> RecordingRecognizer:
        made.append(RecordingRecognizer())
        return made[-1]

    stt = LaneStt(factory, frames, pre_roll_frames=15)
    assert stt.partial(5) == "" and not made  # no turn yet: nothing decoded, nothing built
    stt.turn_started(20)
    assert stt.partial(25) == "partial 2"  # pre-roll 6..20, then 21..24
    assert stt.partial(25) == "partial 2"  # nothing new to decode
    stt.turn_ended(30)  # the ending frame is not fed
    assert stt.partial(40) == "partial 3"  # closed: the text stays, nothing is fed
    stt.turn_started(3)  # pre-roll clipped at the start of the track
    stt.partial(6)
    calls = made[0].calls
    assert len(made) == 1 and [c for c in calls if isinstance(c, str)] == ["start", "start"]
    fed = [np.unique(c).tolist() for c in calls if not isinstance(c, str)]
    assert fed == [list(range(6, 25)), list(range(25, 30)), list(range(0, 6))]
    assert stt.decoded_frames == 19 + 5 + 6


def test_score_lane_definitions() -> None:
    """Spurious end, false cut-offs (inserted / natural pause), delay, late and missed."""
    speech = np.full(16_000, 1000, dtype=np.int16)  # 1 s of "speech"
    turn = build_turn(speech, [(8000, 500.0)], lead_ms=500.0, tail_ms=3100.0)
    assert turn.turn_end_ms == 2000.0  # 500 lead + 1000 speech + 500 pause

    def score(*decisions: tuple[float, float]) -> dict[str, Any]:
        lane = Lane(
            Configuration("silero", EndpointerSpec("fixed", 200.0)),
            FixedEndpointer(200.0),
            Listener(ScriptedVad([]), FixedEndpointer(200.0)),
            None,
            [{"decided_at_ms": at, "speech_end_ms": end} for at, end in decisions],
        )
        return score_lane(lane, turn, onset_ms=500.0)

    r = score((300.0, 100.0), (1260.0, 1000.0), (1800.0, 1600.0), (2600.0, 2000.0))
    assert r["spurious_ends"] == 1
    assert [c["in"] for c in r["false_cutoffs"]] == ["inserted pause", "natural pause"]
    assert (r["delay_ms"], r["missed"], r["late"]) == (600.0, False, False)
    late = score((2000.0 + 1600.0, 2000.0))
    assert late["late"] and not late["missed"] and late["delay_ms"] == 1600.0
    assert score((1260.0, 1000.0))["missed"]
    assert score((2000.0 + 3100.0, 2000.0))["missed"]
    assert endpointing_replay.summarize([r, late])["false_cutoff_rate"] == 0.5


# --------------------------------------------------------------------------- natural pauses


@pytest.fixture(scope="module")
def natural(tmp_path_factory: pytest.TempPathFactory) -> EndpointingRun:
    """The default eval (natural pauses, held-out split, fixed curve + smart + model policies
    with the observer lane), on the quick subset: real Silero, Whisper, SmolLM2, parselmouth."""
    out = tmp_path_factory.mktemp("eval-endpointing-natural")
    return run_endpointing(EndpointingOptions(out_dir=out, quick=True, quiet=True))


def test_natural_run_shows_every_policy_against_the_whole_fixed_curve(
    natural: EndpointingRun,
) -> None:
    doc = json.loads((natural.options.out_dir / "endpointing.json").read_text("utf-8"))
    fixed = [f"fixed {ms} ms · silero" for ms in range(200, 1001, 100)]
    assert doc["configurations"][: len(fixed)] == fixed
    assert {"smart · silero", "model (whisper+LM) · silero", "model (no text) · silero"} <= set(
        doc["configurations"]
    )
    assert doc["settings"]["pauses"] == "natural" and doc["settings"]["split"] == "held-out"
    split = json.loads((bundled_data_dir().parent / "data/endpointing/split.json").read_text())
    for turn in doc["turns"]:
        assert turn["true_end_source"] == "vad" and not turn["inserted_pauses"]
        assert turn["source"] not in split["calibration_speech"]
        assert turn["noise_file"] not in split["calibration_noise"]
    # Every model policy is judged in quiet and in noise against fixed 500 / 300 ms.
    assert {(v["policy"], v["group"]) for v in doc["goal"]} >= {
        ("model (whisper+LM) · silero", "quiet"),
        ("model (whisper+LM) · silero", "noise"),
    }
    assert all(v["met"] in (True, False) for v in doc["goal"])
    text = (natural.options.out_dir / "endpointing.txt").read_text("utf-8")
    assert "AUC at telling true ends" in text and "policy compute per decision" in text
    assert "goal (model (whisper+LM) · silero, quiet)" in text
    assert imread(natural.options.out_dir / "endpointing.png").shape[1] > 600


def test_fixed_delay_in_quiet_matches_the_vad_ground_truth(natural: EndpointingRun) -> None:
    """The ground truth is the session's own VAD chain on the clean recording, so in quiet a
    fixed threshold ends the turn about its threshold after the true end (the replayed track
    has a lead-in and faded edges, so Silero's state differs by a few frames)."""
    for turn in natural.turns:
        if turn["noise"] is not None:
            continue
        for label, r in turn["results"].items():
            threshold = _fixed_ms(label)
            if threshold is not None:
                assert abs(r["delay_ms"] - threshold) <= 5 * FRAME_MS, label


def test_model_policy_is_charged_its_compute_and_records_its_cues(
    natural: EndpointingRun,
) -> None:
    """Text cues count only once Whisper's and the LM's measured time has passed; every pause
    of the observer lane carries its cues, compute times and a ground-truth label."""
    observer = next(c.label for c in natural.configs if c.endpointer.observe)
    pauses = [p for t in natural.turns for p in t["results"][observer]["pauses"]]
    assert pauses and {p["label"] for p in pauses} <= {"mid", "end"}
    for p in pauses:  # the observer reads the text at once: only the LM's time is charged
        assert p["prosody_ms"] > 0
        assert p["text"] and p["text_ms"] > 0
        assert p["text_ready_ms"] == pytest.approx(p["first_silence_ms"] + p["text_ms"], abs=0.01)
    policy = "model (whisper+LM) · silero"
    charged = [
        (p, t["results"][policy]["stt_decode_ms"])
        for t in natural.turns
        for p in t["results"][policy].get("pauses", [])
        if p["text"]
    ]
    for p, decodes in charged:  # a policy waits for Whisper's measured decode first
        waited = p["text_ready_ms"] - p["first_silence_ms"] - p["text_ms"]
        assert waited >= min(decodes) - FRAME_MS
    assert natural.compute["Whisper decode"]["n"] > 0
    assert natural.compute["LM text score"]["p50_ms"] > 0
    for signal, a in natural.aucs["all"].items():
        assert a["n_end"] + a["n_mid"] > 0 or signal == "pitch_final_z"
