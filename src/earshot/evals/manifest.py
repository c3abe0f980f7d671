"""Reading a recordings folder's ``manifest.jsonl`` (the form of ``earshot/data/manifest.jsonl``).

One JSON object per line with at least ``path`` (relative to the folder) and ``kind``
(``"speech"`` or ``"noise"``); speech entries usually carry ``language``, ``duration_s`` and
``transcript``. Every evaluation reads folders through `read_manifest`, so a user's own folder
works the same as the bundled one.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One manifest line: ``where`` ("<manifest>:<line>", for messages), the parsed object, and
    its audio file's resolved path."""

    where: str
    entry: dict[str, Any]
    path: Path


def bundled_data_dir() -> Path:
    """The package's bundled recordings folder (``earshot/data``)."""
    return Path(str(importlib.resources.files("earshot").joinpath("data")))


def read_manifest(folder: Path) -> list[ManifestEntry]:
    """Every entry of ``folder/manifest.jsonl``, in file order.

    Raises:
        ValueError: no manifest; a line that is not a JSON object; an entry without a string
            ``path`` or ``kind``; a ``path`` naming no file. The message names file, line and fix.
    """
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ValueError(
            f"no {MANIFEST_NAME} in {folder}; point --data at a folder whose {MANIFEST_NAME} has "
            'one JSON object per line with "path" (relative to the folder), "kind" ("speech" or '
            '"noise") and, for speech, "language", "duration_s" and "transcript"'
        )
    entries: list[ManifestEntry] = []
    for line_no, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{manifest}:{line_no}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{where}: not valid JSON ({exc.msg}); fix or remove the line"
            ) from exc
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(entry).__name__}")
        for key in ("path", "kind"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ValueError(f'{where}: the entry has no "{key}" string; add it')
        path = folder / entry["path"]
        if not path.is_file():
            raise ValueError(
                f'{where}: {path} does not exist; fix its "path" (relative to {folder})'
            )
        entries.append(ManifestEntry(where, entry, path))
    return entries
