"""PocketSphinx streaming STT on real bundled recordings (the wheel's own en-US model)."""

from __future__ import annotations

import itertools
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.audio.io import read_audio
from earshot.evals.manifest import Recording, read_manifest
from earshot.evals.stt_score import word_errors
from earshot.stt import make_stt
from earshot.stt.base import Transcript
from earshot.stt.pocketsphinx import PocketsphinxRecognizer

DATA = Path(str(files("earshot") / "data"))
FRAME_SAMPLES = 320  # 20 ms

# Measured with the wheel's model and a fresh recognizer (the first utterance of a session):
# LJ001-0004 streamed in 20 ms frames, WER 2/14 = 0.14 ("reduced", "any" for "produced", "the");
# LJ001-0008 padded with 0.5 s of silence, whole buffer, WER 0.0 (0.25 unpadded: "it's" for
# "has"). The bounds leave room for a word or two of platform float noise.
STREAMING_WER_BOUND = 0.35
TRANSCRIBE_WER_BOUND = 0.3


def manifest_transcript(rel_path: str) -> str:
    """The bundled manifest's reference transcript of ``rel_path``."""
    recordings = (Recording.of(e) for e in read_manifest(DATA))
    return next(r.transcript for r in recordings if r.name == rel_path)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """The evaluations' WER (`earshot.evals.stt_score.word_errors`, jiwer)."""
    return float(word_errors(reference, hypothesis)["wer"])


@pytest.fixture(scope="module")
def recognizer() -> PocketsphinxRecognizer:
    rec = PocketsphinxRecognizer()
    rec.load()
    return rec


def assert_segments_valid(transcript: Transcript, duration_ms: float) -> None:
    assert transcript.words, "expected word segments"
    assert [w.text for w in transcript.words] == transcript.text.split()
    previous_end_ms = 0.0
    for word in transcript.words:
        assert previous_end_ms <= word.start_ms < word.end_ms <= duration_ms
        assert re.fullmatch(r"[a-z']+", word.text), word.text  # no <sil>, [NOISE], read(2)
        previous_end_ms = word.end_ms


def test_streaming_partials_then_final_with_word_times() -> None:
    rel_path = "speech/realtimestt_ljspeech_LJ001-0004.wav"
    pcm = read_audio(DATA / rel_path)
    duration_ms = pcm.size * 1000 / SAMPLE_RATE_HZ
    rec = PocketsphinxRecognizer()  # fresh: its adaptive normalisation has heard nothing yet
    rec.start()
    partials = [
        rec.push_audio(pcm[i : i + FRAME_SAMPLES]) for i in range(0, pcm.size, FRAME_SAMPLES)
    ]
    final = rec.finish()

    first_partial = next(i for i, text in enumerate(partials) if text)
    assert first_partial < len(partials) // 2  # words show up while the user is still talking
    assert len(partials[len(partials) // 2].split()) >= 3
    wer = word_error_rate(manifest_transcript(rel_path), final.text)
    assert wer < STREAMING_WER_BOUND, (wer, final.text)
    assert_segments_valid(final, duration_ms)
    # Segment end frames are inclusive: words with no pause between them touch exactly.
    touching = sum(a.end_ms == b.start_ms for a, b in itertools.pairwise(final.words))
    assert touching >= len(final.words) // 2
    # The last word ends near the end of the speech, which fills the clip.
    assert final.words[-1].end_ms > duration_ms - 300


def test_transcribe_whole_buffer(recognizer: PocketsphinxRecognizer) -> None:
    rel_path = "speech/realtimestt_ljspeech_LJ001-0008.wav"
    pcm = read_audio(DATA / rel_path)
    pad = np.zeros(SAMPLE_RATE_HZ // 2, dtype=np.int16)
    padded = np.concatenate((pad, pcm, pad))
    result = recognizer.transcribe(padded)
    assert word_error_rate(manifest_transcript(rel_path), result.text) < TRANSCRIBE_WER_BOUND
    assert_segments_valid(result, padded.size * 1000 / SAMPLE_RATE_HZ)
    # Word times are relative to the buffer start: nothing inside the leading 0.5 s of silence.
    assert result.words[0].start_ms >= 450.0


def test_finish_without_audio_or_start_is_empty(recognizer: PocketsphinxRecognizer) -> None:
    assert recognizer.finish() == Transcript(text="")
    recognizer.start()
    assert recognizer.push_audio(np.zeros(0, dtype=np.int16)) == ""
    assert recognizer.finish() == Transcript(text="")
    assert recognizer.finish() == Transcript(text="")  # already finished


def test_silence_gives_no_words(recognizer: PocketsphinxRecognizer) -> None:
    recognizer.start()
    silence: Pcm16 = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    for _ in range(25):
        assert recognizer.push_audio(silence) == ""
    assert recognizer.finish() == Transcript(text="")


def test_start_abandons_an_open_utterance(recognizer: PocketsphinxRecognizer) -> None:
    pcm = read_audio(DATA / "speech" / "realtimestt_ljspeech_LJ001-0008.wav")
    recognizer.start()
    assert recognizer.push_audio(pcm[: SAMPLE_RATE_HZ // 2]) != ""
    recognizer.start()
    assert recognizer.finish() == Transcript(text="")


def test_errors_name_the_fix(recognizer: PocketsphinxRecognizer) -> None:
    fresh = PocketsphinxRecognizer()
    with pytest.raises(RuntimeError, match=r"call start\(\) first"):
        fresh.push_audio(np.zeros(320, dtype=np.int16))
    recognizer.start()
    with pytest.raises(ValueError, match="int16"):
        recognizer.push_audio(np.zeros(320, dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"call finish\(\) first"):
        recognizer.transcribe(np.zeros(320, dtype=np.int16))
    recognizer.finish()


def test_make_stt() -> None:
    assert isinstance(make_stt(), PocketsphinxRecognizer)
    assert make_stt("pocketsphinx").name == "pocketsphinx"
    with pytest.raises(ValueError, match="pocketsphinx, whisper"):
        make_stt("nope")
