"""Which words of a reply the user actually heard, from word timings and the played position.

Pure functions used on barge-in: playout reports how many samples of the response were played,
and only the words whose audio was fully played go into the conversation history.
"""

from __future__ import annotations

import re
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


_FIRST_WORD_TOKEN = re.compile(r"(?<!\S)\S*[^\W_]")
"""The start of the first whitespace token holding a letter or a digit."""


def resume_text(generated_text: str, words: Sequence[WordTiming], played_samples: int) -> str:
    """The unheard rest of a reply, from the first word not fully played.

    ``words`` are the timings of what was synthesized so far: whitespace tokens of the
    sentences cut from ``generated_text`` (the chunker drops markdown, bullets and dashes, so
    a token may differ from the generated one only in punctuation). The heard words
    (`earshot.tts.heard.heard_words`) are matched to the start of ``generated_text`` by their
    letters and digits; the rest of the generated text after the last heard token is returned.
    A generated token only partly covered by the heard words was not heard and is kept. Text
    the LLM generated beyond what was synthesized is part of the rest. Tokens without a letter
    or digit (a lone dash) right after the heard words are skipped.

    Args:
        generated_text: all text the LLM produced for the reply.
        words: word timings in 16 kHz samples from the reply's first sample, in order.
        played_samples: samples of the reply played (16 kHz).

    Returns:
        The rest of ``generated_text`` as written (line breaks kept), stripped; '' if every
        word was heard.

    Raises:
        ValueError: ``played_samples`` is negative, or the heard words are not the start of
            ``generated_text`` (words from another reply).
    """
    heard = heard_words(words, played_samples)
    if not heard:
        return generated_text.strip()
    heard_key = "".join(ch for word in heard for ch in word.text if ch.isalnum())
    matched = 0
    position = 0
    while matched < len(heard_key) and position < len(generated_text):
        ch = generated_text[position]
        position += 1
        if not ch.isalnum():
            continue
        if ch != heard_key[matched]:
            break
        matched += 1
    if matched < len(heard_key):
        heard_words_text = " ".join(word.text for word in heard)
        raise ValueError(
            f"the heard words {heard_words_text!r} are not the start of the generated text "
            f"{generated_text[:80]!r}; pass the word timings synthesized from this reply"
        )
    token_end = position
    while token_end < len(generated_text) and not generated_text[token_end].isspace():
        token_end += 1
    if any(ch.isalnum() for ch in generated_text[position:token_end]):
        # The last heard word ends inside a generated token: that token was not fully heard.
        token_start = position
        while token_start > 0 and not generated_text[token_start - 1].isspace():
            token_start -= 1
        return generated_text[token_start:].strip()
    # Skip tokens with no letter or digit (a lone dash) that followed the last heard word.
    rest = _FIRST_WORD_TOKEN.search(generated_text, token_end)
    return generated_text[rest.start() :].strip() if rest is not None else ""
