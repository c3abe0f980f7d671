"""The messages between a protocol state machine and the audio/model engine behind it.

A protocol (`earshot.protocols.realtime.machine.RealtimeProtocol`) is pure: it turns client
events into server events and *commands* for the engine; the engine
(`earshot.protocols.engine.ProtocolEngine`) runs the models and answers with *engine events*.
All audio here is the pipeline format (1-D int16, 16 kHz mono); all times are ms on the
connection's session clock unless a name says "audio" (ms of input audio since the
connection opened, from sample counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from earshot.audio.frames import Pcm16
from earshot.llm.base import ChatMessage
from earshot.tts.base import WordTiming

# -- commands (protocol → engine) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """How the engine detects turns.

    Attributes:
        endpointer: ``"fixed"`` (``server_vad``: end after ``silence_ms`` of silence) or
            ``"smart"`` (``semantic_vad``: earshot's smart end-pointer, bounds × ``scale``).
        threshold: VAD start threshold in (0, 1).
        prefix_padding_ms: audio before the detected speech start that belongs to the turn.
        silence_ms: the fixed end-pointer's silence (ms).
        scale: the smart end-pointer's bound multiplier (``semantic_vad`` eagerness).
    """

    endpointer: Literal["fixed", "smart"] = "fixed"
    threshold: float = 0.5
    prefix_padding_ms: float = 300.0
    silence_ms: float = 500.0
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class Configure:
    """Turn detection on (``turn``) or off (None: the client commits the buffer itself)."""

    turn: TurnSettings | None


@dataclass(frozen=True, slots=True)
class AppendAudio:
    """Input audio (int16 16 kHz), received at ``arrival_ms``.

    ``audio_end_ms`` is the input-audio time at the end of this chunk as the wire counts it
    (the resampler may still hold a few samples of it), or None to count ``pcm``.
    """

    pcm: Pcm16
    arrival_ms: float
    audio_end_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CommitInput:
    """Close the open input segment and transcribe it as user item ``item_id``."""

    item_id: str


@dataclass(frozen=True, slots=True)
class ClearInput:
    """Discard the open input segment (no transcript)."""


@dataclass(frozen=True, slots=True)
class StartResponse:
    """Generate a reply to ``messages`` (or, with ``speak_text``, just speak that text).

    Attributes:
        response_id: the protocol's response id; every engine event of it carries it.
        messages: the chat history including the system instructions.
        audio: synthesize speech (False: text only).
        speak_text: skip the LLM and speak this (a resumed reply); None to generate.
    """

    response_id: str
    messages: tuple[ChatMessage, ...]
    audio: bool = True
    speak_text: str | None = None


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """Stop a response's LLM and TTS work now; its later events are not sent."""

    response_id: str


EngineCommand = Configure | AppendAudio | CommitInput | ClearInput | StartResponse | CancelResponse

# -- engine events (engine → protocol) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """VAD speech start. ``audio_start_ms`` includes the prefix padding; ``speech_start_ms`` not."""

    audio_start_ms: float
    speech_start_ms: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """End of turn decided.

    Attributes:
        audio_end_ms: input-audio time of the decision (includes the silence waited).
        speech_end_audio_ms: input-audio time of the end of the last voiced frame.
        speech_end_ms: session time the server had received that audio (the ``speech_end``
            mark: the arrival of the input chunk that carried the last voiced sample).
        end_of_turn_ms: session time of the decision.
        endpointer_reason: why the end-pointer ended the turn, if it says.
    """

    audio_end_ms: float
    speech_end_audio_ms: float
    speech_end_ms: float
    end_of_turn_ms: float
    endpointer_reason: str = ""


@dataclass(frozen=True, slots=True)
class SpeechDiscarded:
    """A voiced stretch too short for a turn (click, cough) ended; nothing is committed."""

    audio_end_ms: float


@dataclass(frozen=True, slots=True)
class Transcribed:
    """The final transcript of user item ``item_id``; ``audio_ms`` of audio was transcribed."""

    item_id: str
    text: str
    audio_ms: float
    stt_final_ms: float


@dataclass(frozen=True, slots=True)
class ResponseText:
    """Text of a response: a sentence handed to TTS (audio) or an LLM delta (text only)."""

    response_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ResponseAudio:
    """A chunk of a response's speech (int16 16 kHz) and the words starting in it.

    ``words`` are in samples from the response's first sample; ``marks_ms`` are the LLM/TTS
    marks so far (so a reply cancelled before it finished still has its latency record).
    """

    response_id: str
    pcm: Pcm16
    words: tuple[WordTiming, ...] = ()
    marks_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResponseFinished:
    """A response's work ended (all its audio has been emitted, or it failed).

    Attributes:
        marks_ms: LLM/TTS marks (``llm_request``, ``llm_first_token``, ``first_sentence``,
            ``tts_first_audio``) on the session clock.
        error: why it failed ('' if it did not); an LLM failure is spoken as the fallback
            line and reported in ``llm_error`` instead.
    """

    response_id: str
    marks_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""
    llm_error: str = ""


EngineEvent = (
    SpeechStarted
    | SpeechStopped
    | SpeechDiscarded
    | Transcribed
    | ResponseText
    | ResponseAudio
    | ResponseFinished
)
