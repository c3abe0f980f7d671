"""Validation of command-line values: one mechanism for every numeric option and URL.

Each function returns an argparse ``type=`` callable. A bad value raises
`argparse.ArgumentTypeError`, which the parser turns into one line naming the flag:
``earshot converse: error: argument --jitter-ms: 'inf' is not a finite number; give ms in
[0, 2000]``. Every numeric flag of earshot is declared through `number` (or `integer`), so none
accepts NaN, infinity or a value outside the range its meaning allows.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn


def _fmt(value: float) -> str:
    return f"{value:g}"


def number(
    lo: float,
    hi: float,
    *,
    unit: str = "ms",
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], float]:
    """A parser for a finite float in ``[lo, hi]`` (``lo_open``/``hi_open`` exclude an end).

    Args:
        lo, hi: the sane range, in the option's unit.
        unit: shown in the message ("ms", "dB", "dBFS", "" for a plain number).
        lo_open: exclude ``lo`` itself (e.g. a time-out must be > 0).
        hi_open: exclude ``hi`` itself (e.g. a probability threshold must be < 1).

    Returns:
        A callable ``str -> float`` raising `argparse.ArgumentTypeError`.
    """
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    what = f"{unit + ' ' if unit else 'a number '}in {left}{_fmt(lo)}, {_fmt(hi)}{right}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {what}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give {what}")
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {what}")
        return value

    parse.__name__ = "number"
    return parse


def integer(lo: int, hi: int) -> Callable[[str], int]:
    """A parser for an integer in ``[lo, hi]``; see `number`."""
    what = f"a whole number in [{lo}, {hi}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number; give {what}"
            ) from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {what}")
        return value

    parse.__name__ = "integer"
    return parse


def http_url(text: str) -> str:
    """An argparse ``type=`` for an OpenAI-compatible base URL (`check_base_url`)."""
    from earshot.llm.openai_compat import check_base_url

    try:
        return check_base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line naming the flag and pointing to --help.

    Subparsers inherit the class, so every ``earshot`` subcommand reports errors this way.
    """

    def error(self, message: str) -> NoReturn:
        from earshot.safe_text import printable

        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")
