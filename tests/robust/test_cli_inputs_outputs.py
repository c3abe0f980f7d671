"""Bad options, bad inputs and bad output folders: one line naming the problem, before any work.

Real: `earshot converse` as a subprocess on a real recording; the folders and files are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from robust_cli import earshot

from earshot.data_files import bundled_data


@pytest.mark.parametrize(
    ("flag", "value", "why"),
    [
        ("--eot-silence-ms", "nan", "'nan' is not a finite number; give ms in [0, 10000]"),
        ("--eot-silence-ms", "inf", "'inf' is not a finite number"),
        ("--jitter-ms", "inf", "'inf' is not a finite number; give ms in [0, 2000]"),
        ("--jitter-ms", "100000", "100000 is out of range; give ms in [0, 2000]"),
        ("--vad-threshold", "0", "0 is out of range; give a number in (0, 1)"),
        ("--min-interruption-ms", "-5", "-5 is out of range"),
        ("--echo-gain-db", "ten", "'ten' is not a number; give dB in [-80, 20]"),
        ("--llm-first-token-timeout-ms", "0", "0 is out of range; give ms in (0, 600000]"),
    ],
)
def test_every_numeric_option_is_finite_and_in_range(
    short_wav: Path, tmp_path: Path, flag: str, value: str, why: str
) -> None:
    run = earshot("converse", short_wav, "--out", tmp_path / "o", flag, value)
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"earshot converse: error: argument {flag}: ")
    assert why in line and line.endswith(" (see earshot converse --help)")
    assert not (tmp_path / "o").exists()


def test_nan_samples_and_a_folder_are_refused_with_the_right_fix(tmp_path: Path) -> None:
    samples = np.zeros(16000, np.float32)
    samples[8000], samples[8001] = np.nan, np.inf
    bad = tmp_path / "nan.wav"
    sf.write(bad, samples, 16000, subtype="FLOAT")
    run = earshot("converse", bad, "--out", tmp_path / "o")
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: {bad}: 2 samples are NaN or infinite (the first at 0.500 s); the file is "
        "corrupt: re-export the recording as 16-bit PCM WAV"
    )
    run = earshot("converse", tmp_path, "--out", tmp_path / "o")
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: {tmp_path}: is a folder; give the path of one recording file inside it"
    )
    assert "ffmpeg" not in run.stderr


def test_a_non_utf8_rules_file_is_named(short_wav: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_bytes(b"rules:\n  - pattern: caf\xe9\n")
    run = earshot("converse", short_wav, "--out", tmp_path / "o", "--llm-rules", rules)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: LLM rules file {rules}: not UTF-8 text (byte 0xe9 at offset 23); save it as UTF-8"
    )


@pytest.mark.parametrize("kind", ["file", "under-a-file", "cannot-create"])
def test_an_unusable_out_is_refused_before_any_work(
    short_wav: Path, tmp_path: Path, kind: str
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    out, why = {
        "file": (a_file, "is a file, not a folder; give a folder path"),
        "under-a-file": (a_file / "run", f"{a_file} is a file, not a folder"),
        # /proc refuses new entries even to root: an unwritable place on any Linux.
        "cannot-create": (Path("/proc/earshot-test/run"), "cannot create the folder"),
    }[kind]
    run = earshot("converse", short_wav, "--out", out)
    assert run.returncode == 2
    assert run.stderr.strip().startswith(f"error: --out {out}: ") and why in run.stderr
    assert run.stdout == ""  # no progress: nothing ran
    assert a_file.read_text() == "not a folder"


def test_the_input_is_never_overwritten(short_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = earshot("converse", short_wav, "--out", out, "--simulated-clock", "--quiet")
    assert first.returncode == 0
    recording = out / "conversation.wav"
    before = recording.read_bytes()
    run = earshot("converse", recording, "--out", out, "--simulated-clock", "--quiet")
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: --out {out}: the input {recording} is this run's output conversation.wav, "
        "which the run would overwrite; give another --out"
    )
    assert recording.read_bytes() == before


def test_a_reused_folder_holds_only_the_new_run(short_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    noise = bundled_data("noise", "speechbrain_noise2.wav")  # a noise room: mic.wav is written
    first = earshot(
        "converse", short_wav, "--out", out, "--simulated-clock", "--quiet",
        "--noise", noise, "--noise-dbfs", "-70",
    )  # fmt: skip
    assert first.returncode == 0
    assert {"mic.wav", "latency.png", "report.md"} <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine")  # not earshot's: left alone
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(3 * 16000, np.int16), 16000)
    run = earshot("converse", silence, "--out", out, "--simulated-clock", "--quiet")
    assert run.returncode == 0, run.stderr
    assert f"note: {out} held an `earshot converse` run; its 5 files were removed" in run.stdout
    names = {p.name for p in out.iterdir()}
    assert names == {
        "conversation.wav", "turns.jsonl", "report.md", "earshot-run.json", "notes.txt"
    }  # fmt: skip
    assert (out / "turns.jsonl").read_text() == ""
    manifest = json.loads((out / "earshot-run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["files"] == ["conversation.wav", "turns.jsonl", "report.md"]
    assert set(manifest["not_written"]) == {"mic.wav", "latency.png"}
