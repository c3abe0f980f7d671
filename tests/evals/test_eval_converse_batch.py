"""`earshot eval converse`: one `earshot converse` run per recording of a folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from earshot.budget.measured import load_turns
from earshot.cli import main
from earshot.evals.manifest import bundled_data_dir


def test_a_folder_without_manifest(tmp_path: Path) -> None:
    data = tmp_path / "calls"
    data.mkdir()
    shutil.copy(
        bundled_data_dir() / "speech" / "realtimestt_ljspeech_LJ001-0008.wav", data / "a.wav"
    )
    (data / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert main(["eval", "converse", "--data", str(data), "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "converse.json").read_text(encoding="utf-8"))
    assert doc["counts"] == {"planned": 1, "recordings": 1, "turns": 1, "complete_turns": 1}
    (rec,) = doc["recordings"]
    run_dir = out / rec["run_dir"]
    for name in ("conversation.wav", "turns.jsonl", "report.md", "latency.png"):
        assert (run_dir / name).is_file(), name
    own = [json.loads(x) for x in (run_dir / "turns.jsonl").read_text().splitlines()]
    assert rec["ttfat"]["p50_ms"] == pytest.approx(own[0]["ttfat_ms"], abs=1e-3)
    assert "never been surpassed" in own[0]["user_text"]
    # The folder's turns.jsonl is a measured budget like any run's.
    measured = load_turns([out]).measured
    assert measured is not None and measured.num_turns == 1


def test_bad_folders_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["eval", "converse", "--out", str(out), "--quiet"]) == 2
    assert "--data DIR is required" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", "converse", "--data", str(empty), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no recordings" in err and err.count("\n") == 1 and not out.exists()
