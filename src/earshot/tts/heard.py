"""Which words of a reply the user actually heard, from word timings and the played position.

Pure functions used on barge-in: playout reports how many samples of the response were played,
and only the words whose audio was fully played go into the conversation history.
"""

from __future__ import annotations

from collections.abc import Sequence

from earshot.tts.base import WordTiming


def heard_words(words: Sequence[WordTiming], played_samples: int) -> list[WordTiming]:
    """The leading words whose audio was fully played.

    Args:
        words: word timings in order, in 16 kHz samples from the response's first sample.
        played_samples: samples of the response played so far (16 kHz).

    Returns:
        The words up to (not including) the first one with ``end_sample > played_samples``. A
        word cut off mid-way counts as not heard.

    Raises:
        ValueError: ``played_samples`` is negative.
    """
    if played_samples < 0:
        raise ValueError(f"played_samples must be >= 0, got {played_samples}")
    heard: list[WordTiming] = []
    for word in words:
        if word.end_sample > played_samples:
            break
        heard.append(word)
    return heard


def heard_text(words: Sequence[WordTiming], played_samples: int) -> str:
    """The text of `heard_words`, joined with single spaces ('' if none was heard).

    Raises:
        ValueError: ``played_samples`` is negative.
    """
    return " ".join(word.text for word in heard_words(words, played_samples))


def offset_words(words: Sequence[WordTiming], offset_samples: int) -> list[WordTiming]:
    """Shift word timings by ``offset_samples`` (16 kHz samples).

    Used to put each sentence's timings (relative to its own first sample) into the
    coordinates of the whole response: pass the samples of the response synthesized before it.

    Raises:
        ValueError: ``offset_samples`` is negative.
    """
    if offset_samples < 0:
        raise ValueError(f"offset_samples must be >= 0, got {offset_samples}")
    return [
        WordTiming(word.text, word.start_sample + offset_samples, word.end_sample + offset_samples)
        for word in words
    ]
