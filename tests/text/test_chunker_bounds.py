"""The chunker's time and length bounds (pure, on a synthetic timeline)."""

from __future__ import annotations

import pytest

from earshot.text.chunker import SentenceChunker


def test_text_without_punctuation_is_spoken_once_it_has_waited_max_wait_ms() -> None:
    chunker = SentenceChunker(max_wait_ms=1000.0)
    out: list[tuple[float, str]] = []
    for i in range(20):  # one word every 150 ms, no punctuation at all
        for chunk in chunker.push(f"word{i} ", now_ms=i * 150.0):
            out.append((i * 150.0, chunk))
    assert out[0] == (1050.0, "word0 word1 word2 word3 word4 word5 word6 word7")
    for t, chunk in out:  # no word waited longer than the bound (+ one delta's spacing)
        first_arrival_ms = int(chunk.split()[0].removeprefix("word")) * 150.0
        assert t - first_arrival_ms <= 1000.0 + 150.0
    rest = chunker.flush()
    spoken = " ".join(c for _, c in out) + " " + " ".join(rest)
    assert spoken.split() == [f"word{i}" for i in range(20)]


def test_poll_speaks_waiting_text_when_no_delta_comes() -> None:
    chunker = SentenceChunker(max_wait_ms=500.0)
    assert chunker.push("hello there my", now_ms=0.0) == []
    assert chunker.poll(400.0) == []
    assert chunker.poll(500.0) == ["hello there"]  # the unfinished last word waits
    assert chunker.flush() == ["my"]


def test_a_chunk_never_grows_past_max_chars() -> None:
    chunker = SentenceChunker(max_chars=40, max_wait_ms=None)
    chunks = chunker.push("abc " * 50)
    assert chunks and all(len(c) <= 40 for c in chunks)
    assert " ".join([*chunks, *chunker.flush()]).split() == ["abc"] * 50


def test_one_long_word_is_cut_at_max_chars() -> None:
    chunker = SentenceChunker(max_chars=10, max_wait_ms=None)
    assert chunker.push("x" * 25) == ["x" * 10, "x" * 10]
    assert chunker.flush() == ["x" * 5]


def test_punctuated_text_is_chunked_as_before_within_the_bounds() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Hello there, how are you today? I am fine. ", now_ms=0.0) == [
        "Hello there, how are you today?",
        "I am fine.",
    ]


@pytest.mark.parametrize("kwargs", [{"max_wait_ms": 0.0}, {"max_chars": 0}])
def test_bad_bounds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="max_"):
        SentenceChunker(**kwargs)  # type: ignore[arg-type]
