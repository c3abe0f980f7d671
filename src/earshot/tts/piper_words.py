"""Word timings for Piper from its phoneme alignments: a pure, synchronous core.

Piper (espeak-ng phonemes → VITS) reports how many audio samples each phoneme of a sentence
produced (``include_alignments=True``). To time *words*, each phoneme of the sentence must be
given to a word of the text. espeak-ng does not keep words apart one-to-one: it merges some
("of the" → ``ʌvðə``, one phoneme word) and splits others ("42" → ``fɔːɹɾi tuː``). So the
sentence's phonemes are aligned to the phonemes of each text token said on its own, by edit
distance over the sound phonemes (stress and length marks and punctuation aside): a merged
phoneme word is split where its token's own phonemes end, a split token keeps all of its
pieces. Stress and length marks then join the sound beside them, and spaces and punctuation
belong to no word (they are the pauses between words).

A token that gets no phoneme (a lone dash) rides with the word before it (or the first word),
as in `earshot.tts.espeak.ChunkAssembler`, so the word texts joined with spaces give back the
input up to whitespace — which is what `earshot.tts.heard.resume_text` relies on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

_MARKS = frozenset("ˈˌːˑ")
"""Stress and length marks: phonemes with samples but no sound of their own to match."""


def is_sound(phoneme: str) -> bool:
    """True for a phoneme that is a sound (a letter), not a mark, space or punctuation."""
    return (
        bool(phoneme)
        and phoneme not in _MARKS
        and unicodedata.category(phoneme[0]).startswith("L")
        and unicodedata.category(phoneme[0]) != "Lm"
    )


def is_gap(phoneme: str) -> bool:
    """True for a phoneme that belongs to no word: a space or punctuation."""
    return not phoneme.strip() or not unicodedata.category(phoneme[0]).startswith("L")


def label_phonemes(
    token_phonemes: Sequence[Sequence[str]], sentence_phonemes: Sequence[str]
) -> list[int | None]:
    """Which token each phoneme of the sentence belongs to.

    Args:
        token_phonemes: per text token (in order), its phonemes when said alone.
        sentence_phonemes: the phonemes of the text said as a whole (one or more sentences
            concatenated, in order).

    Returns:
        One entry per sentence phoneme: the token index, or None for a space or punctuation.
        Along the sentence the indices never decrease.
    """
    ref: list[int] = []  # token index of each sound phoneme of the tokens said alone
    ref_sounds: list[str] = []
    for index, phonemes in enumerate(token_phonemes):
        for p in phonemes:
            if is_sound(p):
                ref.append(index)
                ref_sounds.append(p)
    positions = [i for i, p in enumerate(sentence_phonemes) if is_sound(p)]
    hyp = [sentence_phonemes[i] for i in positions]
    matched = _align(hyp, ref_sounds)
    labels: list[int | None] = [None] * len(sentence_phonemes)
    for k, position in enumerate(positions):
        j = matched[k]
        labels[position] = ref[j] if j is not None else None
    _fill_words(sentence_phonemes, labels)
    return labels


def _align(hyp: Sequence[str], ref: Sequence[str]) -> list[int | None]:
    """For each element of ``hyp``, the index of the ``ref`` element edit distance pairs it
    with (match or substitution), or None where ``hyp`` has an insertion."""
    n, m = len(hyp), len(ref)
    if m == 0:
        return [None] * n
    # cost[i][j]: edit distance of hyp[:i] and ref[:j]; ties prefer the diagonal.
    cost = [list(range(m + 1))]
    for i in range(1, n + 1):
        row = [i] + [0] * m
        prev = cost[i - 1]
        h = hyp[i - 1]
        for j in range(1, m + 1):
            row[j] = min(prev[j - 1] + (h != ref[j - 1]), prev[j] + 1, row[j - 1] + 1)
        cost.append(row)
    out: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + (hyp[i - 1] != ref[j - 1]):
            out[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return out


def _fill_words(phonemes: Sequence[str], labels: list[int | None]) -> None:
    """Give unlabelled non-gap phonemes (marks, unmatched sounds) the label beside them in the
    same phoneme word: the next labelled one (a stress mark precedes its vowel), else the
    previous; then make the labels non-decreasing."""
    start = 0
    while start < len(phonemes):
        if is_gap(phonemes[start]):
            start += 1
            continue
        end = start
        while end < len(phonemes) and not is_gap(phonemes[end]):
            end += 1
        following: int | None = None
        for i in range(end - 1, start - 1, -1):
            if labels[i] is None:
                labels[i] = following
            else:
                following = labels[i]
        preceding: int | None = None
        for i in range(start, end):
            if labels[i] is None:
                labels[i] = preceding
            else:
                preceding = labels[i]
        start = end
    highest = -1
    for i, label in enumerate(labels):
        if label is not None:
            highest = max(highest, label)
            labels[i] = highest


@dataclass(frozen=True, slots=True)
class TimedToken:
    """A word's extent in one sentence's audio, in engine samples from the sentence's start.

    Attributes:
        token: index of its first text token.
        start_sample: first sample of its first phoneme.
        end_sample: end (exclusive) of its last phoneme.
    """

    token: int
    start_sample: int
    end_sample: int


def time_tokens(
    labels: Sequence[int | None], phoneme_samples: Sequence[int], offset_sample: int = 0
) -> list[TimedToken]:
    """Word extents from per-phoneme labels and per-phoneme sample counts.

    Args:
        labels: `label_phonemes` output for this sentence's phonemes.
        phoneme_samples: samples each of those phonemes produced (same length), not counting
            Piper's sentence-start phoneme, whose samples are ``offset_sample``.
        offset_sample: samples before the first phoneme (Piper's BOS phoneme).

    Returns:
        One entry per token that owns a phoneme, in order.

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(labels) != len(phoneme_samples):
        raise ValueError(f"{len(labels)} labels for {len(phoneme_samples)} phoneme sample counts")
    spans: dict[int, list[int]] = {}
    position = offset_sample
    for label, count in zip(labels, phoneme_samples, strict=True):
        if label is not None:
            span = spans.setdefault(label, [position, position + count])
            span[1] = position + count
        position += count
    return [TimedToken(t, s, e) for t, (s, e) in sorted(spans.items())]


def word_texts(tokens: Sequence[str], owners: Sequence[int]) -> dict[int, str]:
    """The text of each timed word: its token and the unowned tokens after it.

    Args:
        tokens: the whitespace tokens of the text.
        owners: sorted indices of the tokens that own phonemes (words).

    Returns:
        Owner index → its text (tokens joined with single spaces). Unowned tokens before the
        first owner join the first word.
    """
    texts: dict[int, str] = {}
    if not owners:
        return texts
    bounds = [*owners[1:], len(tokens)]
    for k, (owner, end) in enumerate(zip(owners, bounds, strict=True)):
        begin = 0 if k == 0 else owner
        texts[owner] = " ".join(tokens[begin:end])
    return texts
