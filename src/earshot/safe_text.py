"""Text that leaves earshot: secrets redacted, markdown table cells escaped.

* `redact` is the one function every writer and printer passes text through (``report.md``,
  ``turns.jsonl``, ``llm_error``, the terminal, error messages). It hides URL userinfo
  (``http://user:password@host`` → ``http://***@host``); ``Authorization``-style credentials
  (``Bearer …``, ``Basic …``: 8 or more characters holding a digit); ``key=value`` pairs whose
  key names a secret (``api_key``, ``password``, ``token``…); the token shapes of common
  providers (``sk-…``, ``hf_…``, ``ghp_…``, ``AKIA…``, ``xox…``); and every value registered
  with `register_secret` (the API key earshot was given, wherever a server echoes it).
* `markdown_cell` turns any text — an LLM reply, a transcript, an error body — into one safe
  markdown table cell: redacted, whitespace collapsed, control characters shown as ``\\xNN``
  escapes, HTML special characters as entities, and pipes escaped.

Both are pure functions of their input (and of the registered secrets).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

MASK = "***"
"""What a redacted secret is replaced with."""

_MIN_SECRET_CHARS = 4
"""Registered secrets shorter than this are not redacted (they would mask ordinary text)."""

_secrets: set[str] = set()

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@?#]+@")
_AUTH_SCHEME = re.compile(
    r"(?i)\b(?P<scheme>bearer|basic|token)(?P<sep>\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}"
)
_NAMED = re.compile(
    r"(?i)(?P<name>\b[\w-]*(?:api[_-]?key|access[_-]?key|secret|password|passwd|token)\b)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"'&,;}\]]{3,})"
)
_PROVIDER_TOKEN = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{12,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{16,}"
    r"|github_pat_[A-Za-z0-9_]{16,}|AKIA[A-Z0-9]{12,}|xox[abprs]-[A-Za-z0-9-]{10,})"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def register_secret(value: str | None) -> None:
    """Redact every later occurrence of ``value`` (e.g. the LLM API key) in `redact` output.

    Values shorter than 4 characters, and None, are ignored.
    """
    if value and len(value) >= _MIN_SECRET_CHARS:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced by ``***``.

    Example: ``redact("http://bob:hunter2@host/v1 Bearer sk-abcdefghijklmnop")`` →
    ``"http://***@host/v1 Bearer ***"``.
    """
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']}{m['sep']}{MASK}", text)
    text = _NAMED.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    return _PROVIDER_TOKEN.sub(MASK, text)


def redact_json(value: Any) -> Any:
    """A copy of a JSON-like value (dict / list / str / number) with every string redacted.

    Keys are kept as they are; non-string leaves are returned unchanged.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [redact_json(v) for v in value]
    return value


def printable(text: str) -> str:
    """``text`` redacted, on one line, with control characters shown as ``\\xNN`` escapes.

    For anything written to a terminal or a log line (an error message echoing a server body).
    """
    flat = " ".join(redact(text).split())
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", flat)


def markdown_cell(text: str, max_chars: int | None = None) -> str:
    """``text`` as one markdown table cell: safe to embed, and never empty.

    Redacted (`redact`), whitespace collapsed to single spaces, cut to ``max_chars`` with "…",
    control characters shown as ``\\xNN``, ``& < >`` as HTML entities (so no tag or comment the
    LLM wrote is rendered), ``|`` escaped. An empty result is "—".
    """
    flat = printable(text)
    if max_chars is not None and len(flat) > max_chars:
        flat = flat[: max_chars - 1].rstrip() + "…"
    flat = html.escape(flat, quote=False).replace("|", "\\|")
    return flat or "—"
