"""The Realtime session's effective configuration, its updates and its JSON form.

``semantic_vad`` eagerness maps onto earshot's smart end-pointer by scaling all its silence
bounds: the API documents maximum waits of 8 s / 4 s / 2 s for ``low`` / ``medium`` / ``high``
(``auto`` = ``medium``), a factor of 2 per step, so earshot scales its packaged bounds
(200–800 ms, `earshot.turns.smart`) by 2, 1 and 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import JsonValue

from earshot.protocols.audio_formats import WireFormat
from earshot.protocols.engine_types import TurnSettings
from earshot.protocols.realtime.events import (
    IGNORED_SESSION_FIELDS,
    EarshotOptions,
    SemanticVad,
    ServerVad,
    SessionIn,
)

EAGERNESS_SCALE: dict[str, float] = {"low": 2.0, "medium": 1.0, "auto": 1.0, "high": 0.5}
"""Smart end-pointer bound multiplier per ``semantic_vad`` eagerness (8/4/2 s documented)."""

DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant. Answer in one or two short spoken sentences."
)
DEFAULT_VOICE = "alloy"


class SessionUpdateError(ValueError):
    """A ``session.update`` that cannot be applied; ``param`` names the offending field."""

    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(slots=True)
class RealtimeSessionState:
    """What a ``session.updated`` event shows; mutable, owned by the protocol."""

    session_id: str
    model: str
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = DEFAULT_VOICE
    speed: float = 1.0
    input_format: WireFormat = "audio/pcm"
    output_format: WireFormat = "audio/pcm"
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    turn_detection: ServerVad | SemanticVad | None = field(default_factory=lambda: ServerVad())
    transcription_model: str | None = None
    earshot: EarshotOptions = field(default_factory=EarshotOptions)
    ignored: list[str] = field(default_factory=list)

    def apply(self, update: SessionIn, audio_sent: bool) -> tuple[bool, bool, bool]:
        """Apply the fields present in ``update``.

        Args:
            update: the parsed ``session`` object.
            audio_sent: the session has already produced output audio (voice is then fixed).

        Returns:
            (input format changed, turn detection changed, output format changed).

        Raises:
            SessionUpdateError: a transcription session, or a voice change after audio.
        """
        if update.type == "transcription":
            raise SessionUpdateError(
                "transcription sessions are not supported by earshot; use type 'realtime' "
                "(input transcription is always on)",
                "session.type",
            )
        given = update.model_fields_set
        if "instructions" in given and update.instructions is not None:
            self.instructions = update.instructions
        if "output_modalities" in given and update.output_modalities is not None:
            if len(update.output_modalities) != 1:
                raise SessionUpdateError(
                    "output_modalities must be ['audio'] or ['text'] (not both)",
                    "session.output_modalities",
                )
            self.output_modalities = list(update.output_modalities)
        if "earshot" in given and update.earshot is not None:
            self.earshot = update.earshot
        self.ignored = sorted(
            {*self.ignored, *(name for name in IGNORED_SESSION_FIELDS if name in given)}
        )
        in_changed = turn_changed = out_changed = False
        audio = update.audio
        if audio is not None and audio.input is not None:
            inp = audio.input
            fields = inp.model_fields_set
            if "format" in fields and inp.format is not None:
                in_changed = inp.format.type != self.input_format
                self.input_format = inp.format.type
            if "turn_detection" in fields:
                self.turn_detection = inp.turn_detection
                turn_changed = True
            if "transcription" in fields:
                tr = inp.transcription
                self.transcription_model = tr.model if tr is not None else None
        if audio is not None and audio.output is not None:
            out = audio.output
            fields = out.model_fields_set
            if "voice" in fields and out.voice is not None:
                voice = out.voice if isinstance(out.voice, str) else out.voice.get("id", "")
                if audio_sent and voice != self.voice:
                    raise SessionUpdateError(
                        "voice cannot be changed once the session has produced audio",
                        "session.audio.output.voice",
                        "cannot_update_voice",
                    )
                self.voice = voice
            if "speed" in fields and out.speed is not None:
                self.speed = out.speed
            if "format" in fields and out.format is not None:
                out_changed = out.format.type != self.output_format
                self.output_format = out.format.type
        return in_changed, turn_changed, out_changed

    def turn_settings(self) -> TurnSettings | None:
        """The engine's turn detection for the current ``turn_detection`` (None: manual)."""
        td = self.turn_detection
        match td:
            case None:
                return None
            case ServerVad():
                return TurnSettings(
                    endpointer="fixed",
                    threshold=td.threshold,
                    prefix_padding_ms=float(td.prefix_padding_ms),
                    silence_ms=float(td.silence_duration_ms),
                )
            case SemanticVad():
                return TurnSettings(endpointer="smart", scale=EAGERNESS_SCALE[td.eagerness])

    def to_json(self) -> dict[str, JsonValue]:
        """The session object of ``session.created`` / ``session.updated``."""

        def fmt(kind: WireFormat) -> dict[str, JsonValue]:
            return {"type": kind, "rate": 24000} if kind == "audio/pcm" else {"type": kind}

        td = self.turn_detection
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.session_id,
            "model": self.model,
            "output_modalities": list(self.output_modalities),
            "instructions": self.instructions,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "expires_at": 0,
            "include": None,
            "audio": {
                "input": {
                    "format": fmt(self.input_format),
                    "transcription": {"model": self.transcription_model or "earshot"},
                    "noise_reduction": None,
                    "turn_detection": None if td is None else td.model_dump(),
                },
                "output": {
                    "format": fmt(self.output_format),
                    "voice": self.voice,
                    "speed": self.speed,
                },
            },
            "earshot": {
                **self.earshot.model_dump(),
                "ignored_fields": list(self.ignored),
            },
        }
