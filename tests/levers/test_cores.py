"""Pure cores of the levers on synthetic timelines: cache, preemptive policy, filler, marks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from earshot.levers.cache import ResponseCache
from earshot.levers.normalize import normalize_transcript
from earshot.levers.preemptive import (
    CancelSpeculation,
    CommitSpeculation,
    PreemptiveConfig,
    PreemptivePolicy,
    StartSpeculation,
    clamp_marks,
)
from earshot.metrics.turn import MARKS

AUDIO = np.arange(1, 1601, dtype=np.int16)


# -- normalization and the cache --------------------------------------------------------------


def test_normalization_ignores_case_punctuation_and_hesitations_but_keeps_contractions() -> None:
    assert normalize_transcript("Um, What's  the TIME?") == "what's the time"
    assert normalize_transcript("whats the time") != normalize_transcript("what's the time")
    assert normalize_transcript("...") == ""


def test_cache_hit_miss_ttl_and_key_normalization() -> None:
    cache = ResponseCache(ttl_ms=1000.0)
    assert cache.lookup("What are your hours?", 0.0) is None
    assert cache.store("what are your hours", "Nine to five.", AUDIO, (), now_ms=10.0)
    hit = cache.lookup("WHAT are your hours", 500.0)
    assert hit is not None and hit.text == "Nine to five." and np.array_equal(hit.audio, AUDIO)
    assert cache.lookup("what are your hours", 1010.0) is None  # expired at stored + TTL
    stats = cache.stats.to_json()
    assert stats["hits"] == 1 and stats["misses"] == 2 and stats["expired"] == 1
    assert len(cache) == 0


def test_cache_intent_allowlist_shares_replies_and_refuses_everything_else() -> None:
    cache = ResponseCache(intents={"hours": r"\b(hours|open)\b"})
    assert cache.key("When are you open?") == cache.key("what are your hours") == "intent:hours"
    assert cache.key("what's my balance") is None
    assert not cache.store("what's my balance", "Forty dollars.", AUDIO, (), 0.0)
    cache.store("what are your hours", "Nine to five.", AUDIO, (), 0.0)
    assert cache.lookup("when are you open", 1.0) is not None
    assert cache.lookup("what's my balance", 1.0) is None
    assert cache.stats.not_allowed == 1 and cache.stats.hits == 1


def test_uncacheable_replies_are_counted_not_stored_and_the_store_is_bounded() -> None:
    cache = ResponseCache(max_entries=2)
    assert not cache.store("what time is it", "It is 3 pm.", AUDIO, (), 0.0, cacheable=False)
    assert cache.stats.refused == 1 and cache.lookup("what time is it", 1.0) is None
    for i, text in enumerate(("one", "two", "three")):
        cache.store(text, f"reply {i}", AUDIO, (), float(i))
    assert cache.lookup("one", 5.0) is None  # the least recently used went first
    assert cache.lookup("three", 5.0) is not None
    with pytest.raises(ValueError, match="int16"):
        cache.store("x", "y", AUDIO.astype(np.float32), (), 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="TTL"):
        ResponseCache(ttl_ms=0.0)


# -- preemptive policy ------------------------------------------------------------------------


def test_speculation_starts_once_the_partial_is_stable_during_a_pause_and_commits() -> None:
    policy = PreemptivePolicy(PreemptiveConfig(stable_ms=100.0))
    policy.turn_started(0.0)
    assert policy.partial("what are", 300.0) == []
    assert policy.partial("what are your hours", 600.0) == []
    assert policy.poll(800.0) == []  # still speaking: no pause yet
    policy.speech_paused(900.0)
    assert policy.poll(990.0) == []  # 90 ms after the pause
    assert policy.poll(1000.0) == [StartSpeculation("what are your hours", 1000.0)]
    assert policy.poll(1100.0) == []  # one at a time
    assert policy.final("What are your hours?", 1450.0) == [
        CommitSpeculation("what are your hours", 1450.0)
    ]
    assert policy.summary()["committed"] and policy.summary()["speculations"] == 1


def test_a_changed_partial_cancels_and_a_different_final_restarts() -> None:
    policy = PreemptivePolicy(PreemptiveConfig(stable_ms=100.0, max_speculations=2))
    policy.turn_started(0.0)
    policy.partial("book a table", 500.0)
    policy.speech_paused(600.0)
    assert policy.poll(700.0) == [StartSpeculation("book a table", 700.0)]
    policy.speech_resumed(750.0)
    assert policy.partial("book a table for two", 800.0) == [
        CancelSpeculation("partial_changed", 800.0)
    ]
    policy.speech_paused(900.0)
    assert policy.poll(1000.0) == [StartSpeculation("book a table for two", 1000.0)]
    assert policy.final("book a table for three", 1400.0) == [
        CancelSpeculation("final_differs", 1400.0)
    ]
    assert policy.poll(2000.0) == []  # max_speculations reached
    summary = policy.summary()
    assert summary["speculations"] == 2 and summary["cancelled"] == 2 and not summary["committed"]


def test_clamp_marks_keeps_terms_consecutive_and_reports_the_saving() -> None:
    marks = {
        "speech_end": 1000.0,
        "end_of_turn": 1500.0,
        "stt_final": 1540.0,
        "llm_request": 1150.0,
        "llm_first_token": 1350.0,
        "first_sentence": 1400.0,
        "tts_first_audio": 1480.0,
        "playout_queued": 1545.0,
        "playout_start": 1600.0,
    }
    moved = clamp_marks(marks, MARKS, "stt_final")
    assert moved == {
        "llm_request": 390.0,
        "llm_first_token": 190.0,
        "first_sentence": 140.0,
        "tts_first_audio": 60.0,
    }
    values = [marks[m] for m in MARKS]
    assert values == sorted(values) and marks["playout_queued"] == 1545.0


def test_a_tolerant_cache_accepts_a_near_transcript_and_nothing_further() -> None:
    from earshot.levers.cache import word_distance

    assert (
        word_distance(
            ["in", "a", "comparatively", "modern"], ["him", "being", "a", "comparatively", "modern"]
        )
        == 0.4
    )
    cache = ResponseCache(max_word_distance=0.4)
    cache.store("in a comparatively modern", "Yes.", AUDIO, (), 0.0)
    assert cache.lookup("him being a comparatively modern", 1.0) is not None
    assert cache.lookup("a completely different question here", 1.0) is None
    assert ResponseCache().lookup("him being a comparatively modern", 1.0) is None


# -- cache-friendly context ---------------------------------------------------------------


def _history(turns: int) -> list:
    from earshot.llm.base import ChatMessage

    out = []
    for i in range(turns):
        out += [ChatMessage("user", f"question {i}"), ChatMessage("assistant", f"answer {i}")]
    return out


def test_context_is_append_only_between_folds_and_folds_in_blocks() -> None:
    from earshot.levers.context import SUMMARY_HEADER, ContextPolicy, build_context

    policy = ContextPolicy(keep_turns=3, fold_turns=2)
    assert [policy.folded(n) for n in range(1, 9)] == [0, 0, 0, 2, 2, 4, 4, 6]
    sent = [build_context("Be brief.", _history(n), policy) for n in range(1, 9)]
    assert [m.content for m in sent[2]] == [
        "Be brief.",
        "question 0",
        "answer 0",
        "question 1",
        "answer 1",
        "question 2",
        "answer 2",
    ]
    rewrites = [n + 2 for n, (a, b) in enumerate(itertools.pairwise(sent)) if b[: len(a)] != a]
    assert rewrites == [4, 6, 8]  # the prompt only grows, except when a block is folded
    assert sent[3][1].content == (
        f"{SUMMARY_HEADER} Caller: question 0 Agent: answer 0 Caller: question 1 Agent: answer 1"
    )
    assert sent[4][:2] == sent[3][:2]  # one fold serves fold_turns turns: prefix stable
    assert sum(1 for m in sent[7] if m.role == "user") == 2
