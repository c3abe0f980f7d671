"""What every evaluation writes, and the checks on where it writes, made before any work.

Outputs: ``<stem>.json``, ``<stem>.txt`` (its tables) and ``<stem>.png``, each atomically (temp
file + rename), plus ``<stem>.trials.jsonl``, one line per finished trial, appended as trials
finish (`TrialLog`), so an interrupted run keeps every trial it finished.

`check_out_dir` and `check_out_file` turn every unusable output path (a file where a folder is
wanted, a read-only folder, a folder where a file is wanted) into one `OutputPathError` line
before the run starts, instead of a traceback after it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earshot.audio.io import write_text_atomic


class OutputPathError(ValueError):
    """An output path cannot be written; the message names the path, the problem and the fix."""


def _probe_writable(folder: Path, flag: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".earshot-write-check.")
    except OSError as exc:
        raise OutputPathError(
            f"{flag} {folder}: cannot write there ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """Make sure ``path`` is (or can be made) a writable folder; create it.

    Raises:
        OutputPathError: ``path`` (or a parent) is a file, or the folder cannot be created or
            written to.
    """
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path}: is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(
            f"{flag} {path}: cannot create the folder ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None
    _probe_writable(path, flag)


def check_out_file(path: Path, flag: str) -> None:
    """Make sure a file can be written at ``path`` (its folder is created if missing).

    Raises:
        OutputPathError: ``path`` is a folder, its parent is a file, or the parent cannot be
            created or written to.
    """
    if path.is_dir():
        raise OutputPathError(f"{flag} {path}: is a folder; give a file name")
    check_out_dir(path.parent if str(path.parent) else Path("."), flag)


def dump_json(doc: dict[str, Any]) -> str:
    """``doc`` as indented JSON text with a final newline.

    Raises:
        ValueError: ``doc`` holds NaN or infinity (JSON has no such numbers).
    """
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_eval_outputs(
    out_dir: Path,
    stem: str,
    doc: dict[str, Any],
    text: str,
    plot: Callable[[Path], None] | None,
) -> None:
    """Write the JSON document, the text tables and the chart, each atomically.

    Raises:
        ValueError: ``doc`` holds NaN or infinity (JSON has no such numbers).
    """
    write_text_atomic(out_dir / f"{stem}.json", dump_json(doc))
    write_text_atomic(out_dir / f"{stem}.txt", text)
    if plot is not None:
        plot(out_dir / f"{stem}.png")


class TrialLog:
    """``<stem>.trials.jsonl``: one JSON object per finished trial, durable as it goes.

    The file is emptied when the log opens (a run owns it). Each line is written with a single
    ``write`` and flushed to disk; if a write fails part-way (a full disk), the file is cut back
    to its last whole line, so a torn line never stays in it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._size = 0

    def append(self, obj: dict[str, Any]) -> None:
        """Append one object as a line.

        Raises:
            ValueError: ``obj`` holds NaN or infinity.
            OSError: the write failed (the file keeps every earlier line, whole).
        """
        data = (json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n").encode()
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> TrialLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
