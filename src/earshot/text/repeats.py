"""Repeated sentences a speech recognizer looped on, collapsed to one copy."""

from __future__ import annotations

import re


def collapse_repeats(text: str) -> str:
    """``text`` with a sentence (or a run of up to 3) repeated back to back kept once, and,
    where that happened, a trailing fragment that only restarts an earlier sentence dropped
    ("In 1813. In 1813. In" → "In 1813.", "8. The Press Yard. 8. The Press Yard. 8" →
    "8. The Press Yard.")."""
    parts = [p.strip() for p in re.split(r"(?<=[.?!])\s+", text.strip()) if p.strip()]

    def key(s: str) -> str:
        return re.sub(r"[^a-z0-9 ]", "", s.lower()).strip()

    kept: list[str] = []
    collapsed = False
    for part in parts:
        kept.append(part)
        for k in (1, 2, 3):
            if len(kept) >= 2 * k and [key(x) for x in kept[-k:]] == [
                key(x) for x in kept[-2 * k : -k]
            ]:
                del kept[-k:]
                collapsed = True
                break
    if (
        collapsed
        and len(kept) >= 2
        and kept[-1][-1:] not in ".?!"
        and any(key(x).startswith(key(kept[-1])) for x in kept[:-1])
    ):
        kept.pop()
    return " ".join(kept)
