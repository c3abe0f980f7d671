"""Bad `--from` turns and unusable output paths: one line on stderr, no traceback, no work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from earshot.budget.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("earshot budget: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ([1, 2, 3], "terms_ms is list"),
        ("fast", "terms_ms is str"),
        ({"network_in": 1e308}, r"network_in is 1e\+308 ms, outside 0–3600000 ms"),
        ({"network_in": -5.0}, "outside 0–3600000 ms"),
    ],
)
def test_from_with_a_bad_terms_ms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terms: object, message: str
) -> None:
    record = {"turn": 1, "ttfat_ms": 900.0, "terms_ms": terms}
    (tmp_path / "turns.jsonl").write_text(json.dumps(record) + "\n")
    assert main(["budget", "--from", str(tmp_path), "--samples", "100"]) == 2
    err = _one_line_error(capsys)
    assert f"{tmp_path / 'turns.jsonl'}:1: " in err
    assert re.search(message, err), err


def test_from_a_file_that_is_not_a_turns_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "turns.jsonl").write_bytes(b"[1, 2]\n")
    assert main(["budget", "--from", str(tmp_path)]) == 2
    assert "expected a JSON object per line, got list" in _one_line_error(capsys)
    (tmp_path / "turns.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    assert main(["budget", "--from", str(tmp_path)]) == 2
    assert "not UTF-8 text" in _one_line_error(capsys)


@pytest.mark.parametrize("flag", ["--json", "--chart"])
def test_unusable_output_paths_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    for bad, words in ((tmp_path, "is a folder"), (a_file / "out.x", "is a file")):
        # 10^9 draws would take minutes and gigabytes: the error must come before them.
        argv = ["budget", "--preset", "pipeline-ranges", "--simulate", "--samples", "1000000000"]
        assert main([*argv, flag, str(bad)]) == 2
        err = _one_line_error(capsys)
        assert f"{flag} {bad}" in err and words in err


def test_a_write_that_fails_late_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from earshot.budget import cli_verbs

    def full_disk(path: object, text: str) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(cli_verbs, "write_text_atomic", full_disk)
    out = tmp_path / "b.json"
    assert main(["budget", "--preset", "realtime-typical", "--json", str(out)]) == 1
    err = _one_line_error(capsys)
    assert f"cannot write {out}: No space left on device" in err
