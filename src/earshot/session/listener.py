"""The listener: AEC → VAD → segmenter → turn detector → barge-in policy, one frame at a time.

Synchronous and pure: fed frames with their capture times, it returns typed events and reads no
clock (the caller passes ``now_ms``). The session runs `Listener.front_end` (the blocking
model work: echo cancellation and VAD) off the event loop and `Listener.decide` on it; a
caller with no event loop (the end-pointing evaluation, a test) calls `Listener.push`, which
does both::

    listener = Listener(vad, endpointer, frame_ms=20)
    for i, frame in enumerate(frames):
        for event in listener.push(frame, i * 20.0, agent_playing=False, now_ms=(i + 1) * 20.0):
            match event:
                case UserTurnEnded(eot=eot):
                    print("end of turn, speech ended at", eot.speech_end_ms)

Events come in the order a frame caused them: barge-in events first (the barge-in policy sees
the frame before the turn detector), then turn events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from earshot.audio.frames import Pcm16, samples_per_frame, samples_to_ms
from earshot.echo.aec import AcousticEchoCanceller
from earshot.turns.bargein import (
    BargeInConfig,
    BargeInDetected,
    BargeInPolicy,
    BargeInResolution,
    is_backchannel,
)
from earshot.turns.detector import (
    DEFAULT_MIN_SPEECH_MS,
    EndOfTurn,
    TurnDetector,
    TurnDiscarded,
    TurnStarted,
)
from earshot.turns.endpointer import Endpointer
from earshot.vad.base import VoiceActivityDetector
from earshot.vad.segmenter import SpeechEnded, SpeechStarted, VadSegmenter


@dataclass(frozen=True, slots=True)
class UserTurnStarted:
    """The caller began a turn.

    Attributes:
        start_ms: capture time of the turn's first voiced frame (ms).
        pre_roll: int16 16 kHz frames before and including this one (up to ``pre_roll_ms``),
            to be given to STT first.
        during_agent: the turn began while the agent was playing or a reply was pending.
    """

    start_ms: float
    pre_roll: tuple[Pcm16, ...]
    during_agent: bool


@dataclass(frozen=True, slots=True)
class UserAudio:
    """One frame of (echo-cancelled) audio inside an open turn, for STT (int16 16 kHz)."""

    pcm: Pcm16


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The VAD segmenter ended a speech run inside an open turn; ``end_ms`` its end."""

    end_ms: float


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech started again inside the same open turn at ``start_ms``."""

    start_ms: float


@dataclass(frozen=True, slots=True)
class UserTurnEnded:
    """The end-of-turn decision (``eot`` from the turn detector), decided at ``now_ms``."""

    eot: EndOfTurn
    now_ms: float


@dataclass(frozen=True, slots=True)
class UserTurnDiscarded:
    """A voiced stretch too short to be a turn ended (a click, a cough)."""

    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller started talking over the agent (see `earshot.turns.bargein`)."""

    detection: BargeInDetected


@dataclass(frozen=True, slots=True)
class BargeInSettled:
    """A pending barge-in was resolved (false interruption, backchannel or confirmed)."""

    resolution: BargeInResolution


ListenerEvent = (
    UserTurnStarted
    | UserAudio
    | SpeechPaused
    | SpeechResumed
    | UserTurnEnded
    | UserTurnDiscarded
    | BargeIn
    | BargeInSettled
)


class PauseTranscriptSource(Protocol):
    """A transcript made for the end-of-turn policy at each pause (e.g.
    `earshot.stt.whisper_pause.PauseTranscript`): `decode_if_pausing` is the blocking part,
    called from `Listener.front_end`; the others are cheap and called from `Listener.decide`."""

    def turn_started(self, pre_roll: tuple[Pcm16, ...] = ()) -> None: ...
    def turn_ended(self) -> None: ...
    def observe(self, pcm: Pcm16, is_speech: bool) -> None: ...
    def decode_if_pausing(self) -> None: ...
    def text(self) -> str: ...


class Listener:
    """The input side of a session (see the module docstring).

    Args:
        vad: frame-wise speech probability.
        endpointer: the end-of-turn policy.
        frame_ms: frame duration of every frame pushed (10, 20 or 40).
        vad_threshold: speech probability at or above which a frame is voiced.
        min_speech_ms: voiced time a turn needs before it may end.
        pre_roll_ms: audio before a turn's first voiced frame also handed to STT.
        bargein: barge-in thresholds; None disables barge-in.
        aec: echo canceller run on frames that come with a far-end reference.
        aec_warmup_ms: agent playout (ms, counted in frames with the agent playing) before
            barge-in is armed, while the echo canceller converges.
        partial_source: for a caller that transcribes on demand (the end-pointing
            evaluation): called with no argument on each frame of a pause inside an open turn,
            just before the end-of-turn policy is asked; its text is given to `on_partial`.
            None (the session): partials arrive through `on_partial` as the STT makes them.
        pause_transcript: a transcript made at each pause for the end-of-turn policy (the
            model policy's Whisper decode of the turn's last 3 s); while set, the policy reads
            it instead of the STT's streaming partials (those still tell a barge-in's words
            from noise). None: the policy reads the streaming partials.

    Raises:
        ValueError: an unsupported ``frame_ms``.
    """

    def __init__(
        self,
        vad: VoiceActivityDetector,
        endpointer: Endpointer,
        *,
        frame_ms: int = 20,
        vad_threshold: float = 0.5,
        min_speech_ms: float = DEFAULT_MIN_SPEECH_MS,
        pre_roll_ms: float = 300.0,
        bargein: BargeInConfig | None = None,
        aec: AcousticEchoCanceller | None = None,
        aec_warmup_ms: float = 0.0,
        partial_source: Callable[[], str] | None = None,
        pause_transcript: PauseTranscriptSource | None = None,
    ) -> None:
        self.frame_ms = frame_ms
        self.frame_samples = samples_per_frame(frame_ms)
        self.vad = vad
        self.aec = aec
        self.aec_warmup_ms = aec_warmup_ms
        self.partial_source = partial_source
        self.pause_transcript = pause_transcript
        self._pause_text = ""
        self.segmenter = VadSegmenter(threshold=vad_threshold)
        self.detector = TurnDetector(endpointer, min_speech_ms)
        self.bargein = BargeInPolicy(bargein) if bargein is not None else None
        self.capture_delay_ms = samples_to_ms(aec.output_delay_samples) if aec else 0.0
        self._pre_roll: deque[Pcm16] = deque(maxlen=max(1, int(pre_roll_ms // frame_ms)))
        self._partial = ""
        self._agent_played_ms = 0.0
        self._last_frame_end_ms: float | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def in_turn(self) -> bool:
        """A user turn is open (from its first voiced frame to its end-of-turn)."""
        return self.detector.in_turn

    @property
    def partial(self) -> str:
        """The STT's latest partial transcript of the open turn ('' if none)."""
        return self._partial

    @property
    def bargein_pending(self) -> bool:
        """A barge-in was detected and is not resolved yet."""
        return self.bargein is not None and self.bargein.pending

    # -- per frame ----------------------------------------------------------------------------

    def front_end(self, pcm: Pcm16, far_end: Pcm16 | None = None) -> tuple[Pcm16, float]:
        """The blocking per-frame work: echo cancellation (with a far end), then VAD.

        Args:
            pcm: int16 16 kHz mono microphone frame of ``frame_samples`` samples.
            far_end: int16, same length: what the loudspeaker played meanwhile, or None.

        Returns:
            The cleaned frame (int16, same length) and its speech probability in [0, 1].

        Raises:
            ValueError: ``pcm`` is not 1-D int16 of one frame.
        """
        if pcm.dtype != np.int16 or pcm.shape != (self.frame_samples,):
            raise ValueError(
                f"input frame must be 1-D int16 of {self.frame_samples} samples, "
                f"got {pcm.dtype} {pcm.shape}"
            )
        if self.aec is not None:
            ref = far_end if far_end is not None else np.zeros_like(pcm)
            pcm = self.aec.process(pcm, ref)
        if self.pause_transcript is not None:
            self.pause_transcript.decode_if_pausing()
        return pcm, float(self.vad.speech_probability(pcm))

    def decide(
        self,
        clean: Pcm16,
        prob: float,
        capture_ms: float,
        agent_playing: bool,
        now_ms: float,
        *,
        reply_pending: bool = False,
    ) -> list[ListenerEvent]:
        """The pure part of one frame: segmenter, barge-in policy, turn detector.

        Args:
            clean: the frame from `front_end` (int16 16 kHz).
            prob: its speech probability.
            capture_ms: capture time of the frame's first sample (session clock, ms).
            agent_playing: agent audio was playing while the frame was captured.
            now_ms: session time now (decisions are stamped with it).
            reply_pending: a reply is being prepared (barge-in is armed then too: a caller who
                goes on after a false end-of-turn must not be talked over).

        Returns:
            The events the frame caused, in order.
        """
        frame_ms = float(self.frame_ms)
        start_ms = capture_ms - self.capture_delay_ms  # the AEC delays what it outputs
        if self._last_frame_end_ms is not None:
            start_ms = max(start_ms, self._last_frame_end_ms)
        end_ms = start_ms + frame_ms
        self._last_frame_end_ms = end_ms
        events: list[ListenerEvent] = []
        voiced_end_ms: float | None = None
        for vad_event in self.segmenter.push(prob, start_ms, frame_ms):
            if isinstance(vad_event, SpeechEnded):
                voiced_end_ms = vad_event.end_ms
                if self.detector.in_turn:
                    events.append(SpeechPaused(vad_event.end_ms))
            elif isinstance(vad_event, SpeechStarted) and self.detector.in_turn:
                events.append(SpeechResumed(vad_event.start_ms))
        self._pre_roll.append(clean)
        if agent_playing:
            self._agent_played_ms += frame_ms
        events[:0] = self._barge_in_step(end_ms, agent_playing or reply_pending)
        was_in_turn = self.detector.in_turn
        if self.partial_source is not None and was_in_turn and not self.segmenter.is_speech:
            self.on_partial(self.partial_source(), now_ms)
        policy_text = self._partial
        pause = self.pause_transcript
        if pause is not None:
            if was_in_turn and not self.segmenter.is_speech:
                self._pause_text = pause.text()
            policy_text = self._pause_text
        turn_events = self.detector.push(
            start_ms, end_ms, self.segmenter.is_speech, policy_text, clean, voiced_end_ms
        )
        if was_in_turn and self.detector.in_turn:
            events.append(UserAudio(clean))
            if pause is not None:
                pause.observe(clean, self.segmenter.is_speech)
        for ev in turn_events:
            match ev:
                case TurnStarted():
                    self._partial = self._pause_text = ""
                    if pause is not None:
                        pause.turn_started(tuple(self._pre_roll))
                    during = agent_playing or self.bargein_pending
                    events.append(UserTurnStarted(ev.start_ms, tuple(self._pre_roll), during))
                case EndOfTurn():
                    events.append(UserTurnEnded(ev, now_ms))
                    if pause is not None:
                        pause.turn_ended()
                case TurnDiscarded():
                    events.append(UserTurnDiscarded(ev.start_ms, ev.end_ms))
                    if pause is not None:
                        pause.turn_ended()
                    settled = self.on_transcript("", now_ms)
                    if settled is not None:
                        events.append(BargeInSettled(settled))
                case _:
                    pass
        return events

    def push(
        self,
        pcm: Pcm16,
        capture_ms: float,
        agent_playing: bool,
        now_ms: float,
        *,
        far_end: Pcm16 | None = None,
        reply_pending: bool = False,
    ) -> list[ListenerEvent]:
        """`front_end` then `decide` for one frame (blocking: runs the VAD and AEC here).

        Args:
            pcm: int16 16 kHz mono frame of ``frame_samples`` samples.
            capture_ms: capture time of its first sample (ms); frames are contiguous.
            agent_playing: agent audio was playing while it was captured.
            now_ms: session time now (ms).
            far_end: the echo canceller's reference for this frame, or None.
            reply_pending: a reply is being prepared.

        Raises:
            ValueError: a malformed frame.
        """
        clean, prob = self.front_end(pcm, far_end)
        return self.decide(
            clean, prob, capture_ms, agent_playing, now_ms, reply_pending=reply_pending
        )

    # -- from STT and the conversation ---------------------------------------------------------

    def on_partial(self, text: str, now_ms: float) -> None:
        """The STT's partial transcript of the open turn changed (used by the end-of-turn
        policy and, while a barge-in is pending, to tell words from noise)."""
        self._partial = text
        if self.bargein is not None and self.bargein.pending:
            self.bargein.on_words(text, now_ms)

    def on_transcript(
        self, text: str, now_ms: float, speech_ms: float | None = None
    ) -> BargeInResolution | None:
        """The final transcript of a turn: resolves a pending barge-in (None if none)."""
        self._partial = ""
        if self.bargein is None or not self.bargein.pending:
            return None
        return self.bargein.on_user_turn_end(text, now_ms, speech_ms)

    def is_backchannel(self, text: str) -> bool:
        """``text`` is only an acknowledgement ("mm-hmm", "yeah") under barge-in's config."""
        return self.bargein is not None and (
            not text.strip() or is_backchannel(text, self.bargein.config)
        )

    def _barge_in_step(self, frame_end_ms: float, active: bool) -> list[ListenerEvent]:
        if self.bargein is None:
            return []
        armed = active and self._agent_played_ms >= self.aec_warmup_ms
        out: list[ListenerEvent] = []
        for ev in self.bargein.push(
            frame_end_ms, armed, self.segmenter.is_speech, self.segmenter.speech_start_ms
        ):
            out.append(BargeIn(ev) if isinstance(ev, BargeInDetected) else BargeInSettled(ev))
        return out
