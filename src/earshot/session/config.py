"""Session settings."""

from __future__ import annotations

from dataclasses import dataclass

from earshot.audio.frames import ALLOWED_FRAME_MS, DEFAULT_FRAME_MS
from earshot.turns.detector import DEFAULT_MIN_SPEECH_MS


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Knobs of one conversation.

    Attributes:
        frame_ms: input/output frame duration (10, 20 or 40 ms).
        vad_threshold: speech probability at or above which a frame is voiced. 0.5 is the
            OpenAI Realtime ``server_vad`` default and the §39.4.3 Silero loop example.
        min_speech_ms: voiced time a turn needs before it may end.
        pre_roll_ms: audio before the detected speech start also sent to STT (OpenAI
            Realtime ``prefix_padding_ms`` default 300 ms).
        jitter_ms: playout hold of each response's first audio (ms).
        max_tail_ms: after the input ends, how long to wait for pending replies (ms).
        aec_warmup_ms: agent playout (ms) before barge-in is armed, while an echo canceller
            converges. LiveKit Agents defaults ``aec_warmup`` to 3.0 s (REFERENCE.md); earshot
            defaults to 0 and the transport raises it when it simulates echo.
        max_lookahead_ms: most audio of one reply (ms) TTS may have queued unplayed before it
            waits for playout (bounds memory on a long reply).
        no_audio_timeout_ms: a reply with no audio this long after it started is recorded as
            failed and the fallback line is spoken.
    """

    frame_ms: int = DEFAULT_FRAME_MS
    vad_threshold: float = 0.5
    min_speech_ms: float = DEFAULT_MIN_SPEECH_MS
    pre_roll_ms: float = 300.0
    jitter_ms: float = 40.0
    max_tail_ms: float = 30_000.0
    aec_warmup_ms: float = 0.0
    max_lookahead_ms: float = 10_000.0
    no_audio_timeout_ms: float = 8_000.0

    def __post_init__(self) -> None:
        if self.frame_ms not in ALLOWED_FRAME_MS:
            raise ValueError(
                f"frame size {self.frame_ms} ms is not supported; use one of {ALLOWED_FRAME_MS}"
            )
        if not 0.0 < self.vad_threshold < 1.0:
            raise ValueError(f"VAD threshold must be in (0, 1), got {self.vad_threshold}")
        if self.jitter_ms < 0:
            raise ValueError(f"jitter buffer must be >= 0 ms, got {self.jitter_ms}")
        for name in ("max_lookahead_ms", "no_audio_timeout_ms"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive finite number of ms, got {value}")
