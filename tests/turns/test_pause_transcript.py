"""The transcript a live call's end-of-turn model reads at a pause (`PauseTranscript`, wired
through the `Listener`): one decode per pause of the turn's last 3 s, done in the blocking
front end, offered only once its measured decode time has passed in frames; the streaming
partials no longer reach the policy. Pure timelines with a fake transcriber (the fake stands
in for Whisper so the frame arithmetic is exact), then the real Whisper tiny.en on a bundled
recording."""

from __future__ import annotations

import math
import time

import numpy as np

from earshot.data_files import bundled_data
from earshot.session.listener import Listener
from earshot.stt.whisper_pause import WHISPER_CONTEXT_MS, PauseTranscript
from earshot.testing.fakes import ScriptedVad
from earshot.turns.endpointer import PauseContext

FRAME_MS = 20
FRAME = 320


class SeenText:
    """An end-of-turn policy that never ends the turn and records the text it was given."""

    name = "records text"

    def __init__(self) -> None:
        self.seen: list[tuple[float, str]] = []

    def decide(self, ctx: PauseContext) -> bool:
        self.seen.append((ctx.silence_ms, ctx.partial_text))
        return False

    def on_resume(self, pause_ms: float) -> None:
        pass

    def on_turn_end(self) -> None:
        pass


class SlowTranscriber:
    """Returns a fixed text after ``delay_ms`` of real time; records what it was given."""

    def __init__(self, text: str, delay_ms: float) -> None:
        self.text = text
        self.delay_ms = delay_ms
        self.calls: list[int] = []

    def __call__(self, pcm: np.ndarray) -> str:
        self.calls.append(len(pcm))
        time.sleep(self.delay_ms / 1000.0)
        return self.text


def _run(speech_ms: list[tuple[float, float]], total_ms: float, transcriber: SlowTranscriber):
    policy = SeenText()
    pause = PauseTranscript(transcriber, FRAME_MS)
    listener = Listener(ScriptedVad(speech_ms), policy, frame_ms=FRAME_MS, pause_transcript=pause)
    frame = np.full(FRAME, 1000, np.int16)
    for i in range(int(total_ms // FRAME_MS)):
        listener.on_partial("streaming partial that must not reach the policy", i * FRAME_MS)
        clean, prob = listener.front_end(frame)
        listener.decide(clean, prob, i * FRAME_MS, False, (i + 1) * FRAME_MS)
    return policy, pause


def test_text_is_offered_only_after_the_measured_decode_time() -> None:
    transcriber = SlowTranscriber("how are you", delay_ms=45.0)
    policy, pause = _run([(0.0, 1000.0)], 1800.0, transcriber)
    assert len(transcriber.calls) == 1  # one decode for the one pause
    assert pause.decode_ms and pause.decode_ms[0] >= 45.0
    lag = math.ceil(pause.decode_ms[0] / FRAME_MS)
    texts = [t for _, t in policy.seen]
    assert texts, "the policy was never asked"
    assert all("streaming" not in t for t in texts)
    first = texts.index("how are you")
    # Decoded in the front end of the frame after the pause's first silent frame; offered from
    # `lag` frames after that.
    assert first == 1 + lag
    assert set(texts[:first]) == {""} and set(texts[first:]) == {"how are you"}


def test_each_pause_decodes_once_and_at_most_the_last_3_s() -> None:
    transcriber = SlowTranscriber("x", delay_ms=0.0)
    speech = [(0.0, 4000.0), (4600.0, 5200.0)]
    _run(speech, 6200.0, transcriber)
    assert len(transcriber.calls) == 2
    assert transcriber.calls[0] == int(WHISPER_CONTEXT_MS // FRAME_MS) * FRAME
    assert max(transcriber.calls) <= WHISPER_CONTEXT_MS * 16


def test_without_a_pause_transcript_the_policy_reads_the_streaming_partial() -> None:
    policy = SeenText()
    listener = Listener(ScriptedVad([(0.0, 600.0)]), policy, frame_ms=FRAME_MS)
    frame = np.full(FRAME, 1000, np.int16)
    for i in range(50):
        listener.on_partial("streaming", i * FRAME_MS)
        clean, prob = listener.front_end(frame)
        listener.decide(clean, prob, i * FRAME_MS, False, (i + 1) * FRAME_MS)
    assert policy.seen and {t for _, t in policy.seen} == {"streaming"}


def test_real_whisper_transcribes_the_end_of_a_recording() -> None:
    from earshot.audio.io import read_audio

    audio = read_audio(bundled_data("speech", "realtimestt_ljspeech_LJ001-0002.wav"))
    pause = PauseTranscript(None, FRAME_MS)
    pause.turn_started()
    for start in range(0, len(audio) - FRAME + 1, FRAME):
        pause.observe(audio[start : start + FRAME], True)
    pause.observe(np.zeros(FRAME, np.int16), False)
    pause.decode_if_pausing()
    while (text := pause.text()) == "":
        pass
    assert "comparatively modern" in text.lower()
