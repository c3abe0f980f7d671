"""SentenceChunker: exact chunks for streamed replies."""

from __future__ import annotations

import re

import pytest

from earshot.text.chunker import SentenceChunker


def run(deltas: list[str], chunker: SentenceChunker | None = None) -> list[tuple[int, str]]:
    """Push every delta; return (index of the delta that completed it, chunk); flush = len."""
    chunker = chunker or SentenceChunker()
    out = [(i, chunk) for i, delta in enumerate(deltas) for chunk in chunker.push(delta)]
    out += [(len(deltas), chunk) for chunk in chunker.flush()]
    return out


def words(text: str) -> list[str]:
    """Split like an LLM stream: each word with its leading space."""
    return re.findall(r"\s*\S+", text)


def test_sentences_come_out_when_the_next_delta_shows_whitespace() -> None:
    deltas = [
        "Hello",
        " there",
        "!",
        " How",
        " are",
        " you",
        " today",
        "?",
        " I",
        " am",
        " fine",
        ".",
    ]
    assert run(deltas) == [(3, "Hello there!"), (8, "How are you today?"), (12, "I am fine.")]


def test_first_chunk_ends_at_the_first_clause_once_long_enough() -> None:
    text = (
        "Block books, right, they were carved, each page from one block. "
        "They came first, then type."
    )
    assert run(words(text)) == [
        # "Block books," (12 characters) and "Block books, right," (19) are too short for a
        # clause chunk (20): the first chunk ends at the next comma.
        (6, "Block books, right, they were carved,"),
        (11, "each page from one block."),
        # Later chunks end only at sentence ends, not at the comma.
        (16, "They came first, then type."),
    ]


def test_clause_min_chars_is_respected_exactly() -> None:
    chunker = SentenceChunker(clause_min_chars=12)
    assert chunker.push("Block books, right,") == ["Block books,"]  # exactly 12 characters
    assert chunker.push(" each page, was") == []  # not the first chunk any more
    assert chunker.flush() == ["right, each page, was"]


def test_em_dash_semicolon_and_colon_are_clause_breaks() -> None:
    assert SentenceChunker().push("Printing arrived in Europe—slowly at first") == [
        "Printing arrived in Europe"
    ]
    assert SentenceChunker().push("There are two kinds of books; block and typeset") == [
        "There are two kinds of books;"
    ]
    assert SentenceChunker().push("Here is the short answer: yes") == ["Here is the short answer:"]
    assert SentenceChunker().push("It was the fifteenth century - roughly") == [
        "It was the fifteenth century"
    ]
    # No break on a colon or comma without a following space (times, thousands).
    assert SentenceChunker().push("The meeting is at 10:30 with 1,000 people ok") == []


def test_short_sentences_merge_until_min_chars() -> None:
    assert run(words("Sure. I can help with that. OK. Bye.")) == [
        (6, "Sure. I can help with that."),
        (8, "OK. Bye."),
    ]
    assert run(words("Sure. I can help."), SentenceChunker(min_chars=0, clause_min_chars=0)) == [
        (1, "Sure."),
        (4, "I can help."),
    ]


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence() -> None:
    text = "Dr. Smith met Mr. J. R. Jones at 5 p.m. today. It cost 3.5 dollars, e.g. cheap. Fine."
    assert run(words(text), SentenceChunker(clause_min_chars=1000)) == [
        (11, "Dr. Smith met Mr. J. R. Jones at 5 p.m. today."),
        (17, "It cost 3.5 dollars, e.g. cheap."),
        (18, "Fine."),
    ]


def test_a_period_at_the_end_waits_for_the_next_delta() -> None:
    chunker = SentenceChunker(min_chars=0)
    assert chunker.push("It costs 3.") == []
    assert chunker.push("5 dollars. Next") == ["It costs 3.5 dollars."]
    assert chunker.flush() == ["Next"]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert run(['He said "stop', '."', " Then", " he", " left", "."]) == [
        (2, 'He said "stop."'),
        (6, "Then he left."),
    ]


def test_markdown_is_stripped_and_lines_break_chunks() -> None:
    deltas = ["# Ste", "ps\n", "- **first**", " do this\n", "* then `that`", "\n", "Done", "!"]
    assert run(deltas) == [(1, "Steps"), (3, "first do this"), (5, "then that"), (8, "Done!")]


def test_whitespace_is_collapsed_and_empty_input_gives_nothing() -> None:
    assert run(["  Well,   this  is", "\tfine. "]) == [(1, "Well, this is fine.")]
    assert run(["", "   ", "\n\n"]) == []


def test_flush_resets_for_the_next_reply() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Yes, this is the first reply") == []
    assert chunker.flush() == ["Yes, this is the first reply"]
    # The next reply is again allowed an early clause chunk.
    assert chunker.push("Well, a second reply begins, and goes on") == [
        "Well, a second reply begins,"
    ]
    assert chunker.flush() == ["and goes on"]


def test_chunks_reassemble_the_reply() -> None:
    text = (
        "Comparatively modern, yes, at least next to handwritten books. Printing from movable type "
        "in Europe goes back to the fifteenth century. Is there a period you are curious about?"
    )
    chunks = [chunk for _, chunk in run(words(text))]
    assert chunks == [
        "Comparatively modern,",
        "yes, at least next to handwritten books.",
        "Printing from movable type in Europe goes back to the fifteenth century.",
        "Is there a period you are curious about?",
    ]
    assert " ".join(chunks) == text


def test_negative_minimums_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"min_chars=-1"):
        SentenceChunker(min_chars=-1)
