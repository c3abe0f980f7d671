"""Reading the text files a user hands earshot (rules, backchannels, budgets, manifests).

`read_text_file` is the one reader: every failure is one line that names the file, what it was
for and the fix, raised as the loader's own error class — a missing file, a folder, a file that
cannot be read, or one that is not UTF-8 (with the byte offset of the first bad byte).
"""

from __future__ import annotations

import os
from pathlib import Path


class InputFileError(ValueError):
    """A user-supplied text file cannot be read; the message names it and the fix."""


def read_text_file(
    path: str | os.PathLike[str],
    what: str,
    error: type[Exception] = InputFileError,
) -> str:
    """The UTF-8 text of ``path``.

    Args:
        path: the file.
        what: what the file is for, for the message (e.g. ``"LLM rules file"``).
        error: the exception class to raise (a loader's own, e.g. ``RulesError``); it is built
            from the message alone.

    Raises:
        error: the file is missing, is a folder, cannot be read, or is not valid UTF-8.
    """
    p = Path(path)
    if p.is_dir():
        raise error(f"{what} {p}: is a folder; give the path of the file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {p}: no such file; check the path") from None
    except OSError as exc:
        raise error(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {p}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
