"""Output folders and files: checked before any work, written atomically, owned per run.

Every command that writes results (``converse``, ``eval …``, ``budget … --json/--chart``) uses
this module, so an output problem is always a one-line `OutputError` that names the path:

* `check_out_dir` — before any work: ``--out`` must be (or become) a folder earshot can write
  in; a file, a path under a file, a read-only or missing mount fails here, not after the run.
* `check_out_file` — the same for a single output file (``--json out.json``).
* `atomic_write` / `write_text` / `write_json` — temp file in the same folder, then a rename:
  a reader sees the old file or the whole new one, never a part; on failure (a full disk) the
  temp file is removed and the old file is left as it was.
* `JsonLinesLog` — an append-only JSON Lines file in which a line is written whole or not at
  all: a write that fails part-way (ENOSPC) is truncated back, so no torn line reaches the file.
* `RunFolder` — a run's claim on its folder. It knows the files the run owns, refuses to write
  over one of the run's inputs, removes every file an earlier run left there (listed in the
  folder's ``earshot-run.json`` manifest, or bearing one of the run's own names) and says so,
  and ends by writing the manifest: which files this run wrote, which it did not and why, and
  whether it completed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from earshot import shutdown
from earshot.safe_text import redact_json

MANIFEST = "earshot-run.json"
"""The file in an output folder that lists the files of the run that wrote it."""

_UMASK = os.umask(0o022)
os.umask(_UMASK)

RunStatus = Literal["running", "complete", "failed", "interrupted"]


class OutputError(ValueError):
    """An output path cannot be used or written; the one-line message names it and the fix."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_out_dir(
    path: str | os.PathLike[str], flag: str = "--out", *, create: bool = True
) -> Path:
    """Make sure ``path`` is a folder this process can create files in (creating it if needed).

    The check is a real one: a probe file is created and removed, so a read-only mount, a full
    inode table or a permission problem show up here and not after the run. With
    ``create=False`` nothing is made: the nearest existing folder on the way is probed instead
    (the evaluations make their folder only once a trial has run).

    Returns:
        The folder, as a Path.

    Raises:
        OutputError: ``path`` is a file, lies under a file, or cannot be created or written in.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{flag} {p}: is a file, not a folder; give a folder path")
    _usable_dir(p, f"{flag} {p}", create=create)
    return p


def check_out_file(path: str | os.PathLike[str], flag: str, *, create: bool = True) -> Path:
    """The same check for a single output file (``--json out.json``): its folder must be usable
    (``create`` as for `check_out_dir`).

    Raises:
        OutputError: ``path`` is a folder, or its folder cannot be created or written in.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{flag} {p}: is a folder; give a file path, e.g. {p / 'out.json'}")
    _usable_dir(p.parent, f"{flag} {p}", create=create)
    return p


def _usable_dir(p: Path, shown: str, *, create: bool = True) -> None:
    """Create ``p`` if needed (or, without ``create``, take its nearest existing folder) and
    probe that files can be made in it; errors start ``shown``."""
    for parent in (p, *p.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{shown}: {parent} is a file, not a folder; give another path")
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{shown}: cannot create the folder ({_reason(exc)}); give a writable path"
            ) from None
    else:
        while not p.exists() and p.parent != p:
            p = p.parent
    try:
        fd, probe = tempfile.mkstemp(dir=p, prefix=".earshot-probe-")
    except OSError as exc:
        raise OutputError(
            f"{shown}: cannot write in this folder ({_reason(exc)}); give a writable folder"
        ) from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temp file beside it, then a rename.

    Readers see the old file or the whole new one. There is no fsync: callers may run on an
    event loop, where a flush to a busy disk would stall every call (crash durability per
    line is `JsonLinesLog`'s job).

    Args:
        path: the final file.
        write: writes the complete file at the given temporary path.

    Raises:
        OutputError: the folder cannot be written or the disk is full (the temp file is
            removed; an existing ``path`` is untouched).
    """
    p = Path(path)
    with shutdown.temp_file_in_flight() as named:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        except OSError as exc:
            raise OutputError(f"cannot write {p}: {_reason(exc)}") from None
        tmp = Path(tmp_name)
        named(tmp)  # a second Ctrl-C from here on removes it (`earshot.shutdown.hard_stop`)
        os.close(fd)
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # what open() would give: mkstemp makes it 0600
            write(tmp)
            os.replace(tmp, p)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {p}: {_reason(exc)}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically (see `atomic_write`)."""

    def fill(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, fill)


def write_json(path: str | os.PathLike[str], doc: Any) -> None:
    """Write a JSON document atomically, every string in it redacted (`redact_json`).

    Raises:
        ValueError: ``doc`` holds NaN or infinity (JSON has no such numbers).
        OutputError: the file cannot be written.
    """
    text = json.dumps(redact_json(doc), indent=2, ensure_ascii=False, allow_nan=False)
    write_text(path, text + "\n")


def write_json_lines(path: str | os.PathLike[str], objs: Iterable[Mapping[str, Any]]) -> None:
    """Write a whole JSON Lines file atomically, every string redacted.

    Raises:
        ValueError: an object holds NaN/infinity or a value JSON cannot carry.
        OutputError: the file cannot be written.
    """
    lines = [json.dumps(redact_json(o), ensure_ascii=False, allow_nan=False) for o in objs]
    write_text(path, "".join(line + "\n" for line in lines))


class JsonLinesLog:
    """An append-only JSON Lines file, durable per line, never holding a torn line.

    Each `append` writes one line with ``os.write`` calls, then fsyncs. If a write fails
    part-way (a full disk), the file is truncated back to its length before the line and
    `OutputError` is raised, so readers only ever see whole lines.

    Args:
        path: the file; created, or truncated unless ``append=True``.
        append: keep existing lines.

    Raises:
        OutputError: the file cannot be opened.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        append: bool = False,
        _write: Callable[[int, bytes], int] = os.write,
    ) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {_reason(exc)}") from None
        self._write = _write
        self.count = 0
        """Lines written by this log."""

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._fd is None

    def append_line(self, line: str) -> None:
        """Append ``line`` (a newline is added) whole, or not at all.

        Raises:
            ValueError: the log is closed, or ``line`` holds a newline.
            OutputError: the write failed; the file is as it was before the call.
        """
        if self._fd is None:
            raise ValueError(f"{self.path}: the log is closed")
        if "\n" in line:
            raise ValueError(f"{self.path}: a JSON line cannot hold a newline")
        data = (line + "\n").encode("utf-8")
        fd = self._fd
        size_before = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = self._write(fd, view.tobytes())
                if written <= 0:
                    raise OSError(28, "No space left on device")
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size_before)
            raise OutputError(f"cannot write {self.path}: {_reason(exc)}") from None
        self.count += 1

    def append(self, obj: Mapping[str, Any]) -> None:
        """Append one JSON object, every string in it redacted.

        Raises:
            ValueError: the object holds NaN/infinity or a value JSON cannot carry.
            OutputError: the write failed (the file keeps only whole lines).
        """
        self.append_line(json.dumps(redact_json(obj), ensure_ascii=False, allow_nan=False))

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonLinesLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(slots=True)
class RunFolder:
    """One run's claim on its output folder; see the module docstring.

    Build it with `RunFolder.check` (before any work), then `claim` it once the inputs have
    been read, write the files, and `finish`.

    Attributes:
        path: the folder.
        command: what wrote it, e.g. ``"converse"`` (kept in the manifest).
        files: names of every file the run may write.
        earlier: a note when the folder held an earlier run's files (set by `claim`), else None.
    """

    path: Path
    command: str
    files: tuple[str, ...]
    earlier: str | None = None
    written: list[str] = field(default_factory=list)
    not_written: dict[str, str] = field(default_factory=dict)

    @classmethod
    def check(
        cls,
        path: str | os.PathLike[str],
        command: str,
        files: Iterable[str],
        *,
        inputs: Iterable[str | os.PathLike[str] | None] = (),
        flag: str = "--out",
    ) -> RunFolder:
        """Check the folder and that no input would be overwritten; change nothing yet.

        Raises:
            OutputError: the folder is unusable (`check_out_dir`), or an input is one of the
                files this run would write (or its manifest).
        """
        folder = cls(check_out_dir(path, flag), command, tuple(files))
        owned = [folder.path / name for name in (*folder.files, MANIFEST)]
        for given in inputs:
            if given is None or not Path(given).exists():
                continue
            for out in owned:
                if out.exists() and os.path.samefile(given, out):
                    raise OutputError(
                        f"{flag} {folder.path}: the input {given} is this run's output "
                        f"{out.name}, which the run would overwrite; give another {flag}"
                    )
        return folder

    def claim(self) -> None:
        """Remove every file an earlier run left here and mark the folder as running.

        Sets `earlier` to a one-line note when there were such files.

        Raises:
            OutputError: a file cannot be removed or the manifest cannot be written.
        """
        earlier_files, earlier_command = self._earlier_run()
        stale = sorted(set(earlier_files) | {n for n in self.files if (self.path / n).exists()})
        for name in stale:
            target = self.path / name
            try:
                if target.is_file() or target.is_symlink():
                    target.unlink()
            except OSError as exc:
                raise OutputError(
                    f"{self.path}: cannot remove the earlier run's {name} ({_reason(exc)})"
                ) from None
        if stale or earlier_command is not None:
            by = f"an `earshot {earlier_command}`" if earlier_command else "an earlier"
            self.earlier = (
                f"note: {self.path} held {by} run; its {len(stale)} files were removed "
                "and are replaced by this run's"
            )
        self._write_manifest("running")

    def path_of(self, name: str) -> Path:
        """The path of one of this run's files.

        Raises:
            ValueError: ``name`` is not in `files`.
        """
        if name not in self.files:
            raise ValueError(f"{name} is not one of this run's files {self.files}")
        return self.path / name

    def wrote(self, name: str) -> None:
        """Record that ``name`` was written."""
        if name not in self.written:
            self.written.append(name)
        self.not_written.pop(name, None)

    def skipped(self, name: str, reason: str) -> None:
        """Record that ``name`` was not written, and why (kept in the manifest)."""
        if name not in self.written:
            self.not_written[name] = reason

    def finish(self, status: RunStatus) -> None:
        """Write the final manifest: this run's status, files written and not written.

        Raises:
            OutputError: the manifest cannot be written.
        """
        self._write_manifest(status)

    def _write_manifest(self, status: RunStatus) -> None:
        from earshot import __version__

        doc = {
            "command": self.command,
            "earshot_version": __version__,
            "status": status,
            "files": list(self.written),
            "not_written": dict(self.not_written),
        }
        write_json(self.path / MANIFEST, doc)

    def _earlier_run(self) -> tuple[Sequence[str], str | None]:
        manifest = self.path / MANIFEST
        if not manifest.exists():
            return (), None
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return (), "(unreadable manifest)"
        if not isinstance(doc, dict):
            return (), "(unreadable manifest)"
        files = doc.get("files")
        names = [n for n in (files if isinstance(files, list) else []) if _is_plain_name(n)]
        command = doc.get("command")
        return names, command if isinstance(command, str) else "(unknown)"


def _is_plain_name(name: object) -> bool:
    """A bare file name (no folder part): the only thing a manifest may ask to remove."""
    return isinstance(name, str) and bool(name) and Path(name).name == name and name != MANIFEST
