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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earshot.audio.io import write_text_atomic
from earshot.outputs import OutputError
from earshot.outputs import check_out_dir as shared_check_out_dir
from earshot.outputs import check_out_file as shared_check_out_file

OutputPathError = OutputError
"""An output path cannot be written (the shared `earshot.outputs.OutputError`)."""


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """Make sure ``path`` is, or can be created as, a folder this process can write to.

    Nothing is created (the folder is made when the first output is written); the check is
    `earshot.outputs.check_out_dir` with ``create=False``.

    Raises:
        OutputPathError: ``path`` or a parent is a file, or the folder cannot be written to.
    """
    shared_check_out_dir(path, flag, create=False)


def check_out_file(path: Path, flag: str) -> None:
    """Make sure a file can be written at ``path`` (its folder may not exist yet; nothing is
    created).

    Raises:
        OutputPathError: ``path`` is a folder, a parent is a file, or the folder cannot be
            written to.
    """
    shared_check_out_file(path, flag, create=False)


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

    The file (and its folder) is created, empty, at the first line or at `close` (a run owns
    it: an earlier run's lines never stay). Each line is written with a single ``write`` and
    flushed to disk; if a write fails part-way (a full disk), the file is cut back to its last
    whole line, so a torn line never stays in it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._fd = os.open(self.path, flags, 0o644)
        return self._fd

    def append(self, obj: dict[str, Any]) -> None:
        """Append one object as a line.

        Raises:
            ValueError: ``obj`` holds NaN or infinity.
            OSError: the write failed (the file keeps every earlier line, whole).
        """
        data = (json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n").encode()
        fd = self._open()
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, self._size)
            raise
        self._size += len(data)

    def close(self) -> None:
        """Close the file, creating it empty if no line was written."""
        os.close(self._open())
        self._fd = None

    def __enter__(self) -> TrialLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
