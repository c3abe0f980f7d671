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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from earshot.audio.io import write_text_atomic
from earshot.outputs import JsonLinesLog, OutputError
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


def dump_json(doc: Mapping[str, Any]) -> str:
    """``doc`` as indented JSON text with a final newline.

    Raises:
        ValueError: ``doc`` holds NaN or infinity (JSON has no such numbers).
    """
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_eval_outputs(
    out_dir: Path,
    stem: str,
    doc: Mapping[str, Any],
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
    it: an earlier run's lines never stay). Lines are written by the shared
    `earshot.outputs.JsonLinesLog`: whole or not at all, fsynced, strings redacted.

    Args:
        path: the file.
        _write: the low-level write (tests inject a failing one).
    """

    def __init__(self, path: Path, *, _write: Callable[[int, bytes], int] = os.write) -> None:
        self.path = path
        self._write = _write
        self._log: JsonLinesLog | None = None

    def _opened(self) -> JsonLinesLog:
        if self._log is None:
            try:
                self._log = JsonLinesLog(self.path, _write=self._write)
            except OutputError as exc:  # after the checks: a failed write, not a bad --out
                raise OSError(str(exc)) from None
        return self._log

    def append(self, obj: dict[str, Any]) -> None:
        """Append one object as a line.

        Raises:
            ValueError: ``obj`` holds NaN or infinity.
            OSError: the write failed (the file keeps every earlier line, whole).
        """
        log = self._opened()
        try:
            log.append(obj)
        except OutputError as exc:
            raise OSError(str(exc)) from None

    def close(self) -> None:
        """Close the file, creating it empty if no line was written."""
        self._opened().close()

    def __enter__(self) -> TrialLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
