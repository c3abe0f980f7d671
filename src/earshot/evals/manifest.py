"""Reading a recordings folder's ``manifest.jsonl`` (the form of ``earshot/data/manifest.jsonl``).

One JSON object per line with at least ``path`` (relative to the folder) and ``kind``
(``"speech"`` or ``"noise"``); speech entries usually carry ``language``, ``duration_s`` and
``transcript``. Every evaluation reads folders through `read_manifest`, so a user's own folder
works the same as the bundled one.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterator
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


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording of a manifest, as every evaluation sees it (metadata only, no audio).

    Attributes:
        path: absolute path of the audio file (any format `read_audio` takes).
        name: ``path`` as written in the manifest (relative to the data folder).
        duration_s: duration stated in the manifest, in seconds (``None`` if not stated).
        transcript: the reference transcript (``""`` if none).
        language: the manifest's language code, e.g. ``"en"`` (``""`` if none).
    """

    path: Path
    name: str
    duration_s: float | None = None
    transcript: str = ""
    language: str = ""

    @classmethod
    def of(cls, item: ManifestEntry) -> Recording:
        """The recording a manifest entry describes.

        Raises:
            ValueError: ``duration_s`` is present but not a number (the message names the line).
        """
        entry = item.entry
        duration = entry.get("duration_s")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float)
        ):
            raise ValueError(f"{item.where}: duration_s is {duration!r}; give seconds, e.g. 2.5")
        return cls(
            path=item.path,
            name=str(entry["path"]),
            duration_s=None if duration is None else float(duration),
            transcript=str(entry.get("transcript") or ""),
            language=str(entry.get("language") or ""),
        )


def iter_manifest(folder: Path) -> Iterator[ManifestEntry]:
    """The entries of ``folder/manifest.jsonl``, in file order, read line by line (a corpus of
    any size is never held in memory).

    Raises:
        ValueError: no manifest; a line that is not UTF-8 or not a JSON object; an entry
            without a string ``path`` or ``kind``; a ``path`` naming no file. The message names
            file, line and fix.
    """
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ValueError(
            f"no {MANIFEST_NAME} in {folder}; point --data at a folder whose {MANIFEST_NAME} has "
            'one JSON object per line with "path" (relative to the folder), "kind" ("speech" or '
            '"noise") and, for speech, "language", "duration_s" and "transcript"'
        )
    with manifest.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            where = f"{manifest}:{line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{where}: not UTF-8 text; save the manifest as UTF-8") from None
            if line.strip():
                yield _entry(folder, where, line)


def _entry(folder: Path, where: str, line: str) -> ManifestEntry:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg}); fix or remove the line") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    for key in ("path", "kind"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ValueError(f'{where}: the entry has no "{key}" string; add it')
    path = folder / entry["path"]
    if not path.is_file():
        raise ValueError(f'{where}: {path} does not exist; fix its "path" (relative to {folder})')
    return ManifestEntry(where, entry, path)


def read_manifest(folder: Path) -> list[ManifestEntry]:
    """Every entry of ``folder/manifest.jsonl``, in file order (`iter_manifest`, as a list).

    Raises:
        ValueError: as `iter_manifest`.
    """
    return list(iter_manifest(folder))
