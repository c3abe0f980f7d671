"""Heard-words truncation: exact asserts on hand-made timings (16 kHz samples)."""

from __future__ import annotations

import pytest

from earshot.tts.base import WordTiming
from earshot.tts.heard import heard_text, heard_words, offset_words

WORDS = [
    WordTiming("Hello", 0, 4_800),
    WordTiming("there.", 4_800, 11_000),
    WordTiming("How", 16_000, 19_000),
    WordTiming("are", 19_000, 21_000),
    WordTiming("you?", 21_000, 26_000),
]


def test_nothing_played_means_nothing_heard() -> None:
    assert heard_words(WORDS, 0) == []
    assert heard_text(WORDS, 0) == ""


def test_a_word_counts_once_its_last_sample_is_played() -> None:
    assert heard_words(WORDS, 4_799) == []
    assert heard_words(WORDS, 4_800) == [WORDS[0]]
    assert heard_text(WORDS, 10_999) == "Hello"
    assert heard_text(WORDS, 11_000) == "Hello there."


def test_the_pause_between_sentences_adds_no_words() -> None:
    assert heard_text(WORDS, 15_999) == "Hello there."
    assert heard_text(WORDS, 18_999) == "Hello there."
    assert heard_text(WORDS, 19_000) == "Hello there. How"


def test_everything_played_gives_the_whole_reply() -> None:
    assert heard_words(WORDS, 26_000) == WORDS
    assert heard_text(WORDS, 10**9) == "Hello there. How are you?"


def test_heard_words_stop_at_the_first_unplayed_word() -> None:
    # A later word with an (invalid) early end must not be counted past a gap.
    odd = [WordTiming("a", 0, 100), WordTiming("b", 100, 500), WordTiming("c", 500, 200)]
    assert heard_words(odd, 300) == [odd[0]]


def test_offset_words_shifts_both_ends() -> None:
    second = [WordTiming("Sure.", 0, 6_000)]
    assert offset_words(second, 26_000) == [WordTiming("Sure.", 26_000, 32_000)]
    assert offset_words(second, 0) == second
    assert offset_words([], 500) == []


def test_sentences_offset_then_truncated_together() -> None:
    first = [WordTiming("Hi.", 0, 3_000)]
    second = [WordTiming("Bye", 0, 2_000), WordTiming("now.", 2_000, 5_000)]
    reply = first + offset_words(second, 8_000)  # sentence one had 8 000 samples of audio
    assert heard_text(reply, 9_999) == "Hi."
    assert heard_text(reply, 10_000) == "Hi. Bye"
    assert heard_text(reply, 13_000) == "Hi. Bye now."


def test_negative_positions_are_rejected() -> None:
    with pytest.raises(ValueError, match="played_samples"):
        heard_words(WORDS, -1)
    with pytest.raises(ValueError, match="offset_samples"):
        offset_words(WORDS, -5)
