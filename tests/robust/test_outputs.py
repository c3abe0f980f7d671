"""The output-folder mechanism: atomic files, whole JSON lines, a run's claim on its folder.

Real files on the real filesystem. The one fake: a full disk, which cannot be made here without
privileges, is a write function that writes part of the data and then fails with ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from earshot.outputs import (
    MANIFEST,
    JsonLinesLog,
    OutputError,
    RunFolder,
    atomic_write,
    check_out_dir,
    check_out_file,
    write_json,
)


def _full_disk_after(num_bytes: int):  # type: ignore[no-untyped-def]
    budget = [num_bytes]

    def write(fd: int, data: bytes) -> int:
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: budget[0]])
        budget[0] -= n
        return n

    return write


def test_a_json_line_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    log = JsonLinesLog(path, _write=_full_disk_after(40))
    log.append({"turn": 1, "text": "short"})  # 30 bytes: fits
    with pytest.raises(OutputError, match=r"cannot write .*turns.jsonl: No space left on device"):
        log.append({"turn": 2, "text": "a longer line that the disk cannot hold"})
    log.close()
    lines = path.read_text().splitlines(keepends=True)
    assert lines == ['{"turn": 1, "text": "short"}\n']  # no torn second line
    assert json.loads(lines[0]) == {"turn": 1, "text": "short"}


def test_json_lines_are_redacted(tmp_path: Path) -> None:
    with JsonLinesLog(tmp_path / "t.jsonl") as log:
        log.append({"llm_error": "GET http://u:secretpw1@h/v1 failed", "n": 3})
    assert json.loads((tmp_path / "t.jsonl").read_text()) == {
        "llm_error": "GET http://***@h/v1 failed",
        "n": 3,
    }


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("old report")

    def fill_then_fail(tmp: Path) -> None:
        tmp.write_text("half a new rep")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError, match=r"cannot write .*report.md: No space left on device"):
        atomic_write(path, fill_then_fail)
    assert path.read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_files_get_the_usual_permissions(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_out_checks_name_the_problem(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(OutputError, match=r"^--out .*f: is a file, not a folder"):
        check_out_dir(a_file)
    with pytest.raises(OutputError, match=r"^--json .*f/out\.json: .*f is a file, not a folder"):
        check_out_file(a_file / "out.json", "--json")
    with pytest.raises(OutputError, match=r"^--chart .*: is a folder; give a file path"):
        check_out_file(tmp_path, "--chart")
    assert check_out_dir(tmp_path / "new" / "deep").is_dir()
    assert check_out_file(tmp_path / "x" / "out.json", "--json") == tmp_path / "x" / "out.json"


def test_a_run_folder_replaces_every_file_of_the_earlier_run(tmp_path: Path) -> None:
    first = RunFolder.check(tmp_path, "eval latency", ("latency.json", "latency.png"))
    first.claim()
    assert first.earlier is None
    for name in first.files:
        (tmp_path / name).write_text("old")
        first.wrote(name)
    first.finish("complete")
    (tmp_path / "mine.txt").write_text("not earshot's")

    second = RunFolder.check(tmp_path, "converse", ("report.md", "latency.png"))
    second.claim()
    assert second.earlier == (
        f"note: {tmp_path} held an `earshot eval latency` run; its 2 files were removed "
        "and are replaced by this run's"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "mine.txt"]
    assert json.loads((tmp_path / MANIFEST).read_text())["status"] == "running"
    second.skipped("latency.png", "no measured turn to draw")
    (tmp_path / "report.md").write_text("new")
    second.wrote("report.md")
    second.finish("complete")
    doc = json.loads((tmp_path / MANIFEST).read_text())
    assert doc["command"] == "converse" and doc["status"] == "complete"
    assert doc["files"] == ["report.md"]
    assert doc["not_written"] == {"latency.png": "no measured turn to draw"}


def test_a_manifest_cannot_make_a_run_delete_outside_its_folder(tmp_path: Path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps({"command": "x", "files": ["../precious.txt"]}))
    RunFolder.check(folder, "converse", ("report.md",)).claim()
    assert outside.read_text() == "keep"


def test_an_input_inside_the_outputs_is_refused(tmp_path: Path) -> None:
    recording = tmp_path / "conversation.wav"
    recording.write_bytes(b"RIFF")
    with pytest.raises(OutputError, match=r"is this run's output conversation\.wav"):
        RunFolder.check(tmp_path, "converse", ("conversation.wav",), inputs=(recording,))
    other = tmp_path / "caller.wav"
    other.write_bytes(b"RIFF")
    RunFolder.check(tmp_path, "converse", ("conversation.wav",), inputs=(other, None))
