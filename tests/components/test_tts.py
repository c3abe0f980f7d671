"""espeak-ng TTS: the real library from the espeakng-loader wheel, plus its pure chunk core."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.tts import make_tts
from earshot.tts.base import TtsChunk, WordTiming
from earshot.tts.espeak import (
    ChunkAssembler,
    EspeakError,
    EspeakSynthesizer,
    WordEvent,
)
from earshot.tts.heard import heard_text

TEXT = "Hello there. How can I help you today?"
LONG_TEXT = " ".join([TEXT] * 15)  # ~40 s of speech, hundreds of engine buffers


@pytest.fixture(scope="module")
def tts() -> EspeakSynthesizer:
    return EspeakSynthesizer()


@pytest.fixture(scope="module")
def reply(tts: EspeakSynthesizer) -> list[TtsChunk]:
    return list(tts.synthesize(TEXT))


def _audio(chunks: list[TtsChunk]) -> Pcm16:
    return np.concatenate([chunk.audio for chunk in chunks])


def _words(chunks: list[TtsChunk]) -> list[WordTiming]:
    return [word for chunk in chunks for word in chunk.words]


def _rms(pcm: Pcm16) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


def _espeak_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "earshot-espeak" and t.is_alive()]


# --- the real library ------------------------------------------------------------------------


def test_audio_is_int16_16k_mono_of_plausible_length(reply: list[TtsChunk]) -> None:
    for chunk in reply:
        assert chunk.audio.dtype == np.int16
        assert chunk.audio.ndim == 1
    audio = _audio(reply)
    assert 1.0 <= audio.size / SAMPLE_RATE_HZ <= 5.0
    assert _rms(audio) > 1_000  # speech, not silence (int16 full scale is 32 768)


def test_every_word_is_timed_in_order_inside_the_audio(reply: list[TtsChunk]) -> None:
    words = _words(reply)
    assert [w.text for w in words] == TEXT.split()
    assert heard_text(words, 10**9) == TEXT
    total = _audio(reply).size
    for word, following in itertools.pairwise(words):
        assert word.start_sample < word.end_sample <= following.start_sample
    assert words[0].start_sample >= 0
    assert words[-1].end_sample <= total


def test_positions_count_characters_and_numbers_stay_one_word(tts: EspeakSynthesizer) -> None:
    # é and ï are two UTF-8 bytes each: espeak's text_position counts characters, and "42" is
    # spoken as two words ("forty two") but is one word of the input.
    text = "Café naïve, I'm 42 years-old — fine."
    words = _words(list(tts.synthesize(text)))
    assert [w.text for w in words] == ["Café", "naïve,", "I'm", "42", "years-old —", "fine."]
    assert all(a.end_sample <= b.start_sample for a, b in itertools.pairwise(words))


def test_each_word_rides_on_the_chunk_where_it_starts(reply: list[TtsChunk]) -> None:
    first_sample = 0
    for chunk in reply:
        for word in chunk.words:
            assert first_sample <= word.start_sample < first_sample + chunk.audio.size
        first_sample += chunk.audio.size


def test_timings_follow_the_sound_not_an_even_spread(reply: list[TtsChunk]) -> None:
    audio = _audio(reply)
    words = {w.text: w for w in _words(reply)}
    frame = SAMPLE_RATE_HZ // 100  # 10 ms
    loud = [_rms(audio[i : i + frame]) > 300 for i in range(0, audio.size - frame + 1, frame)]
    # The longest silent run strictly inside the speech is the pause between the sentences.
    first_loud, last_loud = loud.index(True), len(loud) - 1 - loud[::-1].index(True)
    best_start, best_len, run_start = 0, 0, None
    for i in range(first_loud, last_loud + 1):
        if not loud[i] and run_start is None:
            run_start = i
        if loud[i] and run_start is not None:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = None
    gap_start, gap_end = best_start * frame, (best_start + best_len) * frame
    assert best_len * 10 >= 150  # ms: a sentence pause, not a stop closure
    # The first sentence's last word ends where the pause starts; the next one starts after it.
    assert abs(words["there."].end_sample - gap_start) <= 2 * frame
    assert abs(words["How"].start_sample - gap_end) <= 3 * frame
    assert abs(words["Hello"].start_sample - first_loud * frame) <= 3 * frame
    gap_rms = _rms(audio[words["there."].end_sample : words["How"].start_sample])
    for word in words.values():
        assert _rms(audio[word.start_sample : word.end_sample]) > 10 * max(gap_rms, 1.0)


def test_first_chunk_arrives_while_espeak_is_still_synthesizing(tts: EspeakSynthesizer) -> None:
    stream = tts.synthesize(LONG_TEXT)
    first = next(stream)
    # The bounded hand-off queue keeps espeak waiting on us: the worker cannot have finished.
    assert len(_espeak_threads()) == 1
    rest = list(stream)
    assert not _espeak_threads()
    total = first.audio.size + sum(chunk.audio.size for chunk in rest)
    assert len(rest) >= 2
    assert 0 < first.audio.size < total / 100
    assert len(_words([first, *rest])) == len(LONG_TEXT.split())


def test_closing_early_stops_synthesis_and_the_next_call_works(
    tts: EspeakSynthesizer, reply: list[TtsChunk]
) -> None:
    stream = tts.synthesize(LONG_TEXT)
    next(stream)
    next(stream)
    stream.close()  # barge-in
    assert not _espeak_threads()
    again = list(tts.synthesize(TEXT))
    assert [w.text for w in _words(again)] == TEXT.split()
    # espeak is not bit-exact between calls, but the length must match a fresh synthesis.
    assert abs(_audio(again).size - _audio(reply).size) < SAMPLE_RATE_HZ // 100


def test_a_second_synthesis_waits_for_the_first(tts: EspeakSynthesizer) -> None:
    impatient = EspeakSynthesizer(busy_timeout_s=0)
    stream = tts.synthesize(TEXT)
    next(stream)
    with pytest.raises(EspeakError, match="close"):
        next(impatient.synthesize("Hi."))
    stream.close()
    assert [w.text for w in _words(list(impatient.synthesize("Hi there.")))] == ["Hi", "there."]


def test_rate_changes_duration() -> None:
    slow = _audio(list(EspeakSynthesizer(rate_wpm=120).synthesize(TEXT))).size
    fast = _audio(list(EspeakSynthesizer(rate_wpm=300).synthesize(TEXT))).size
    assert fast < 0.7 * slow


def test_whitespace_only_text_yields_nothing(tts: EspeakSynthesizer) -> None:
    assert list(tts.synthesize("  \n ")) == []


def test_bad_arguments_name_the_problem(tts: EspeakSynthesizer) -> None:
    with pytest.raises(ValueError, match="no voice 'xx-nope'"):
        EspeakSynthesizer(voice="xx-nope")
    with pytest.raises(ValueError, match=r"80\.\.450"):
        EspeakSynthesizer(rate_wpm=1000)
    with pytest.raises(TypeError, match="str"):
        tts.synthesize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        tts.synthesize("a\x00b")


def test_make_tts_builds_espeak_by_name() -> None:
    synth = make_tts("espeak", voice="en-us", rate_wpm=200)
    assert isinstance(synth, EspeakSynthesizer)
    assert synth.name == "espeak"
    with pytest.raises(ValueError, match="espeak"):
        make_tts("nope")


def test_pocketsphinx_hears_the_words(reply: list[TtsChunk]) -> None:
    from pocketsphinx import Decoder

    # A closed vocabulary with distractors: espeak's robotic voice is out of domain for the
    # default open-vocabulary model, so this checks the audio is intelligible, not the LM.
    vocab = "hello there how can i help you today the weather is warm call me back what good"
    grammar = "#JSGF V1.0;\ngrammar g;\npublic <s> = ( " + " | ".join(vocab.split()) + " )+ ;\n"
    decoder = Decoder(samprate=SAMPLE_RATE_HZ)
    decoder.add_jsgf_string("g", grammar)
    decoder.activate_search("g")
    decoder.start_utt()
    decoder.process_raw(_audio(reply).tobytes(), full_utt=True)
    decoder.end_utt()
    heard = decoder.hyp().hypstr.split()
    expected = [w.strip(".?").lower() for w in TEXT.split()]
    # Longest common subsequence: most of the words, in order.
    table = [[0] * (len(heard) + 1) for _ in range(len(expected) + 1)]
    for i, want in enumerate(expected):
        for j, got in enumerate(heard):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if want == got else max(table[i][j + 1], table[i + 1][j])
            )
    assert table[-1][-1] >= 6, heard


# --- the pure core, on a synthetic engine stream -----------------------------------------------

ENGINE_HZ = 22_050
BUFFER = 2_205  # 100 ms at 22 050 Hz


def _engine_stream(loud_spans: list[tuple[int, int]], num_samples: int) -> Pcm16:
    audio = np.zeros(num_samples, np.int16)
    tone = (8_000 * np.sin(np.arange(num_samples) * 0.3)).astype(np.int16)
    for start, end in loud_spans:
        audio[start:end] = tone[start:end]
    return audio


def _feed(
    assembler: ChunkAssembler, audio: Pcm16, events: list[WordEvent]
) -> Iterator[list[TtsChunk]]:
    for start in range(0, audio.size, BUFFER):
        inside = [e for e in events if start <= e.sample < start + BUFFER]
        yield assembler.push(audio[start : start + BUFFER], inside)
    yield assembler.finish()


def test_assembler_times_words_from_events_and_trims_pauses() -> None:
    text = "Well — maybe 42 dogs."
    # Engine samples (22 050 Hz); 441 engine samples = 320 output samples (20 ms).
    audio = _engine_stream([(0, 4_410), (6_615, 19_845)], 22_050)
    events = [
        WordEvent(1, 0),  # "Well"; the dash gets no event
        WordEvent(8, 6_615),  # "maybe"
        WordEvent(14, 11_025),  # "42" ...
        WordEvent(15, 13_230),  # ... spoken as two words: the second event is ignored
        WordEvent(17, 15_435),  # "dogs."
    ]
    per_push = list(_feed(ChunkAssembler(text, ENGINE_HZ), audio, events))
    chunks = [chunk for pushed in per_push for chunk in pushed]
    assert _words(chunks) == [
        WordTiming("Well —", 0, 3_200),  # ends at its last sound, not at the next word
        WordTiming("maybe", 4_800, 8_000),
        WordTiming("42", 8_000, 11_200),
        WordTiming("dogs.", 11_200, 14_400),
    ]
    assert _audio(chunks).size == 16_000
    # Nothing leaves until the first word's end is known (the second word's event, in buffer
    # 3); then the chunk holding "Well" goes out, long before the end of the stream.
    assert [len(pushed) for pushed in per_push[:3]] == [0, 0, 0]
    assert per_push[3] and per_push[3][0].words == (WordTiming("Well —", 0, 3_200),)


def test_assembler_keeps_every_token_and_tolerates_stray_events() -> None:
    text = "(Um) yes , really"
    audio = _engine_stream([(0, 22_050)], 22_050)
    events = [
        WordEvent(2, 0),  # inside "(Um)"
        WordEvent(6, 4_410),  # "yes"
        WordEvent(5, 5_000),  # position going backwards: ignored
        WordEvent(99, 6_000),  # past the end of the text: ignored
        WordEvent(12, 8_820),  # "really"
    ]
    chunks = [c for pushed in _feed(ChunkAssembler(text, ENGINE_HZ), audio, events) for c in pushed]
    words = _words(chunks)
    assert [w.text for w in words] == ["(Um)", "yes ,", "really"]
    assert [(w.start_sample, w.end_sample) for w in words] == [
        (0, 3_200),
        (3_200, 6_400),
        (6_400, 16_000),
    ]


def test_assembler_without_word_events_gives_audio_only() -> None:
    audio = _engine_stream([], 4_410)
    chunks = [c for pushed in _feed(ChunkAssembler("...", ENGINE_HZ), audio, []) for c in pushed]
    assert _words(chunks) == []
    assert _audio(chunks).size == 3_200


def test_assembler_rejects_misuse() -> None:
    assembler = ChunkAssembler("hi", ENGINE_HZ)
    with pytest.raises(ValueError, match="int16"):
        assembler.push(np.zeros(10, np.float32), [])
    assembler.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        assembler.push(np.zeros(10, np.int16), [])
    with pytest.raises(RuntimeError, match="twice"):
        assembler.finish()
