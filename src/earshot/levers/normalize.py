"""Transcript normalization shared by the response cache and preemptive generation.

Two transcripts "say the same thing" when they normalize to the same string: case folded,
punctuation dropped (apostrophes inside words kept: "what's" ≠ "whats"), hesitation words
removed, whitespace collapsed. Recognizers differ mostly in exactly these (pocketsphinx writes
lower case without punctuation, Whisper writes sentence case with punctuation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HESITATIONS: frozenset[str] = frozenset({"um", "uh", "erm", "er", "uhm", "hmm", "mm"})
"""Words dropped by `normalize_transcript` (fillers that carry no content)."""

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def transcript_words(text: str, drop: Iterable[str] = HESITATIONS) -> list[str]:
    """The case-folded words of ``text`` without punctuation or the words in ``drop``."""
    dropped = frozenset(drop)
    return [w for w in _WORD.findall(text.casefold()) if w not in dropped]


def normalize_transcript(text: str, drop: Iterable[str] = HESITATIONS) -> str:
    """``text`` as one canonical string: ``"Um, What's  the TIME?"`` → ``"what's the time"``."""
    return " ".join(transcript_words(text, drop))
