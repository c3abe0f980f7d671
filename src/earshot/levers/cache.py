"""The response cache: an input heard before gets its cached reply, audio included, at once.

Keyed by the normalized transcript (`earshot.levers.normalize`), or — with an intent allowlist
— by the name of the first intent whose pattern matches, so "what are your hours" and "when are
you open" can share one reply, and nothing outside the allowlist is ever cached. An entry lives
``ttl_ms`` on the session clock; replies that depend on live data (a tool read the time, a
balance) are stored with ``cacheable=False`` and never replayed. The store is bounded
(least-recently-used entries go first).

The cache is pure: every call takes ``now_ms``; hits, misses, expiries and refusals are
counted in `CacheStats` for the report. Replaying a hit (the session's side) plays ``audio``
straight into the jitter buffer, so the caller waits for end-of-turn and the buffer only.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.levers.normalize import normalize_transcript
from earshot.tts.base import WordTiming


@dataclass(frozen=True, slots=True)
class CachedReply:
    """A reply ready to replay.

    Attributes:
        text: the reply text (goes into the history like a generated reply).
        audio: its synthesized audio, int16 16 kHz mono.
        words: word timings in samples from the first sample of ``audio``.
        stored_ms: when it was stored (session clock).
        expires_ms: when it stops being served.
    """

    text: str
    audio: Pcm16
    words: tuple[WordTiming, ...]
    stored_ms: float
    expires_ms: float


@dataclass(slots=True)
class CacheStats:
    """Counters for the report."""

    hits: int = 0
    misses: int = 0
    expired: int = 0
    """Lookups that found an entry past its TTL (also counted as misses)."""
    not_allowed: int = 0
    """Lookups outside the intent allowlist (never cached; not counted as misses)."""
    stored: int = 0
    refused: int = 0
    """Replies not stored because they were marked uncacheable."""
    retracted: int = 0
    """Hits withdrawn because the final transcript differed from the one looked up."""

    def to_json(self) -> CacheCounters:
        lookups = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": None if lookups == 0 else round(self.hits / lookups, 4),
            "expired": self.expired,
            "not_allowed": self.not_allowed,
            "stored": self.stored,
            "refused": self.refused,
            "retracted": self.retracted,
        }


class CacheCounters(TypedDict):
    """`CacheStats.to_json`: a run's lookups (``hit_rate`` None before the first lookup)."""

    hits: int
    misses: int
    hit_rate: float | None
    expired: int
    not_allowed: int
    stored: int
    refused: int
    retracted: int


@dataclass(slots=True)
class ResponseCache:
    """Normalized input → `CachedReply`, with a TTL and an optional intent allowlist.

    Args:
        ttl_ms: how long an entry is served after it is stored (ms on the session clock).
        max_entries: the most entries kept (least recently used dropped first).
        intents: optional allowlist, intent name → regular expression searched in the
            normalized transcript; when given, only matching inputs are cached and the key is
            the intent's name.
        max_word_distance: a lookup with no exact key also accepts the stored key nearest in
            word edit distance (Levenshtein over words) divided by the longer key's length, if
            at most this (0: exact keys only). Recognizers do not always transcribe the same
            words twice; a loose threshold replays a reply to a different question.

    Raises:
        ValueError: a non-positive TTL or size, or an intent pattern that does not compile.
    """

    ttl_ms: float = 3_600_000.0
    max_entries: int = 1024
    intents: Mapping[str, str] | None = None
    max_word_distance: float = 0.0
    stats: CacheStats = field(default_factory=CacheStats)
    _entries: OrderedDict[str, CachedReply] = field(default_factory=OrderedDict)
    _patterns: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ttl_ms > 0:
            raise ValueError(f"cache TTL must be > 0 ms, got {self.ttl_ms}")
        if not 0.0 <= self.max_word_distance < 1.0:
            raise ValueError(f"max_word_distance must lie in [0, 1), got {self.max_word_distance}")
        if self.max_entries < 1:
            raise ValueError(f"cache size must be >= 1 entry, got {self.max_entries}")
        for name, pattern in (self.intents or {}).items():
            try:
                self._patterns.append((name, re.compile(pattern, re.IGNORECASE)))
            except re.error as exc:
                raise ValueError(f"cache intent {name!r}: bad pattern {pattern!r}: {exc}") from exc

    def key(self, transcript: str) -> str | None:
        """The cache key of ``transcript``, or None if it may not be cached (empty, or outside
        the intent allowlist)."""
        text = normalize_transcript(transcript)
        if not text:
            return None
        if self.intents is None:
            return text
        for name, pattern in self._patterns:
            if pattern.search(text):
                return f"intent:{name}"
        return None

    def lookup(self, transcript: str, now_ms: float) -> CachedReply | None:
        """The live entry for ``transcript`` at ``now_ms``, counting a hit or a miss."""
        key = self.key(transcript)
        if key is None:
            self.stats.not_allowed += 1
            return None
        entry = self._entries.get(key)
        if entry is None and self.max_word_distance > 0:
            key = self._nearest(key)
            entry = self._entries.get(key)
        if entry is not None and now_ms >= entry.expires_ms:
            del self._entries[key]
            self.stats.expired += 1
            entry = None
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry

    def _nearest(self, key: str) -> str:
        words = key.split()
        best, best_distance = key, self.max_word_distance
        for other in self._entries:
            distance = word_distance(words, other.split())
            if distance <= best_distance:
                best, best_distance = other, distance
        return best

    def store(
        self,
        transcript: str,
        text: str,
        audio: Pcm16,
        words: tuple[WordTiming, ...],
        now_ms: float,
        *,
        cacheable: bool = True,
    ) -> bool:
        """Keep the reply to ``transcript``; returns whether it was stored.

        Nothing is stored for an uncacheable reply, an empty reply or audio, or an input
        outside the allowlist.

        Raises:
            ValueError: ``audio`` is not 1-D int16.
        """
        if audio.dtype != np.int16 or audio.ndim != 1:
            raise ValueError(f"cached audio must be 1-D int16, got {audio.dtype} {audio.shape}")
        key = self.key(transcript)
        if key is None or not text.strip() or audio.size == 0:
            return False
        if not cacheable:
            self.stats.refused += 1
            return False
        self._entries[key] = CachedReply(text, audio.copy(), words, now_ms, now_ms + self.ttl_ms)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self.stats.stored += 1
        return True

    def retract(self) -> None:
        """Count a hit withdrawn after the final transcript disagreed with the lookup."""
        self.stats.hits -= 1
        self.stats.misses += 1
        self.stats.retracted += 1

    def __len__(self) -> int:
        return len(self._entries)


def word_distance(a: list[str], b: list[str]) -> float:
    """Word-level Levenshtein distance of two word lists over the longer one's length (0–1)."""
    if not a and not b:
        return 0.0
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
            )
        previous = current
    return previous[-1] / max(len(a), len(b))
