"""A file that cannot be written after the run does not lose the others, and the run says so.

The whole loop runs for real (in-process, simulated clock, a real recording). The one fake is
the full disk: the latency chart's writer raises the `OutputError` a full disk gives.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from earshot import converse as converse_module
from earshot.cli import main
from earshot.outputs import OutputError


def test_a_full_disk_on_one_file_is_exit_4_and_the_rest_is_written(
    short_wav: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def full_disk(path: Path, *args: object) -> None:
        raise OutputError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(converse_module, "plot_latency", full_disk)
    out = tmp_path / "run"
    status = main(["converse", str(short_wav), "--out", str(out), "--simulated-clock", "--quiet"])
    stdout = capsys.readouterr().out.strip().splitlines()
    assert status == 4
    assert stdout[-2] == f"cannot write {out / 'latency.png'}: No space left on device"
    assert stdout[-1] == "FAILED: 1 output could not be written (see above)"
    manifest = json.loads((out / "earshot-run.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["files"] == ["conversation.wav", "turns.jsonl", "report.md"]
    assert "No space left on device" in manifest["not_written"]["latency.png"]
    assert len((out / "turns.jsonl").read_text().splitlines()) == 1


def test_an_internal_error_is_one_line(
    short_wav: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something earshot did not expect")

    monkeypatch.setattr(converse_module, "write_report_md", broken)
    monkeypatch.delenv("EARSHOT_DEBUG", raising=False)
    status = main(["converse", str(short_wav), "--out", str(tmp_path), "--simulated-clock"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(err) == 1
    assert re.fullmatch(
        r"earshot: internal error \(a bug, please report it\): RuntimeError: something earshot "
        r"did not expect at test_converse_write_failures\.py:\d+; set EARSHOT_DEBUG=1 for the "
        r"traceback",
        err[0],
    )
