"""OpenAI Realtime (GA) wire events, as earshot's own pydantic models.

The shapes follow the GA Realtime API reference (the event types of the official ``openai``
Python package, ``openai.types.realtime``): client events arrive as JSON text frames with a
``type``; server events carry a server ``event_id``. Only the fields earshot acts on are
modelled strictly; options a cloud model has and earshot has not (tools, tracing, reasoning...)
are accepted and ignored, and the `RealtimeProtocol` says so in ``session.updated``.

earshot's extensions live under an ``earshot`` key of the session object (`EarshotOptions`)
and in one extra server event, ``earshot.latency`` (`EarshotLatencyEvent`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

# -- shared pieces ------------------------------------------------------------------------


class _In(BaseModel):
    """A client-side object: unknown keys are rejected (OpenAI answers "Unknown parameter")."""

    model_config = ConfigDict(extra="forbid")


class AudioPcm(_In):
    """``audio/pcm``: 16-bit little-endian mono PCM; only 24 kHz exists in the API."""

    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[24000] = 24000


class AudioPcmu(_In):
    """``audio/pcmu``: G.711 µ-law, 8 kHz."""

    type: Literal["audio/pcmu"] = "audio/pcmu"


class AudioPcma(_In):
    """``audio/pcma``: G.711 A-law, 8 kHz."""

    type: Literal["audio/pcma"] = "audio/pcma"


AudioFormat = Annotated[AudioPcm | AudioPcmu | AudioPcma, Field(discriminator="type")]


class ServerVad(_In):
    """``server_vad``: voice activity with a silence threshold (defaults as documented)."""

    type: Literal["server_vad"] = "server_vad"
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    prefix_padding_ms: int = Field(default=300, ge=0, le=5000)
    silence_duration_ms: int = Field(default=500, gt=0, le=10_000)
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None


class SemanticVad(_In):
    """``semantic_vad``: end of turn from what was said (earshot's smart end-pointer)."""

    type: Literal["semantic_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True


TurnDetection = Annotated[ServerVad | SemanticVad, Field(discriminator="type")]


class Transcription(_In):
    """Input transcription settings; earshot always uses its own recogniser."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    delay: str | None = None
    keywords: list[str] | None = None
    languages: list[str] | None = None


class AudioInput(_In):
    format: AudioFormat | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = None
    noise_reduction: JsonValue = None


class AudioOutput(_In):
    format: AudioFormat | None = None
    voice: str | dict[str, str] | None = None
    speed: float | None = Field(default=None, ge=0.25, le=1.5)


class AudioConfig(_In):
    input: AudioInput | None = None
    output: AudioOutput | None = None


class EarshotOptions(_In):
    """earshot's extension field, ``session.earshot`` (all off by default = API behaviour).

    Attributes:
        false_interruption_resume: a barge-in that turns out to be a noise or a backchannel
            ("yeah", "okay") resumes the cancelled reply from its first unheard word in a new
            response, instead of leaving it cancelled.
        backchannels: a backchannel spoken during a reply does not interrupt it at all.
        latency_events: send ``earshot.latency`` after each ``response.done`` (default on).
    """

    false_interruption_resume: bool = False
    backchannels: bool = False
    latency_events: bool = True


class SessionIn(_In):
    """The ``session`` object of ``session.update`` (type ``realtime``)."""

    type: Literal["realtime", "transcription"] = "realtime"
    instructions: str | None = None
    audio: AudioConfig | None = None
    output_modalities: list[Literal["text", "audio"]] | None = None
    model: str | None = None
    earshot: EarshotOptions | None = None
    # Accepted and ignored: earshot has no tools, tracing or token limits of a cloud model.
    tools: JsonValue = None
    tool_choice: JsonValue = None
    tracing: JsonValue = None
    truncation: JsonValue = None
    prompt: JsonValue = None
    include: JsonValue = None
    max_output_tokens: JsonValue = None
    reasoning: JsonValue = None
    parallel_tool_calls: JsonValue = None


IGNORED_SESSION_FIELDS = (
    "tools",
    "tool_choice",
    "tracing",
    "truncation",
    "prompt",
    "include",
    "max_output_tokens",
    "reasoning",
    "parallel_tool_calls",
)


class ContentPart(BaseModel):
    """One content part of a message item (``input_text``, ``input_audio``, ``output_audio``...)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["input_text", "input_audio", "output_text", "output_audio", "text", "audio"]
    text: str | None = None
    transcript: str | None = None
    audio: str | None = None


class Item(BaseModel):
    """A conversation item; earshot supports messages (no function calls: it has no tools)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system"]
    content: list[ContentPart] = Field(default_factory=list)
    id: str | None = Field(default=None, max_length=64)
    object: Literal["realtime.item"] | None = "realtime.item"
    status: Literal["completed", "incomplete", "in_progress"] | None = "completed"


class ResponseParams(_In):
    """The ``response`` object of ``response.create``."""

    instructions: str | None = None
    output_modalities: list[Literal["text", "audio"]] | None = None
    conversation: str | None = None
    input: list[Item] | None = None
    metadata: dict[str, str] | None = None
    audio: JsonValue = None
    tools: JsonValue = None
    tool_choice: JsonValue = None
    max_output_tokens: JsonValue = None
    prompt: JsonValue = None
    reasoning: JsonValue = None
    parallel_tool_calls: JsonValue = None


# -- client events ------------------------------------------------------------------------


class _ClientEvent(_In):
    event_id: str | None = None


class SessionUpdate(_ClientEvent):
    type: Literal["session.update"]
    session: SessionIn


class InputAudioBufferAppend(_ClientEvent):
    type: Literal["input_audio_buffer.append"]
    audio: str


class InputAudioBufferCommit(_ClientEvent):
    type: Literal["input_audio_buffer.commit"]


class InputAudioBufferClear(_ClientEvent):
    type: Literal["input_audio_buffer.clear"]


class ConversationItemCreate(_ClientEvent):
    type: Literal["conversation.item.create"]
    item: Item
    previous_item_id: str | None = None


class ConversationItemTruncate(_ClientEvent):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: int = Field(ge=0)
    audio_end_ms: int = Field(ge=0)


class ConversationItemDelete(_ClientEvent):
    type: Literal["conversation.item.delete"]
    item_id: str


class ConversationItemRetrieve(_ClientEvent):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ResponseCreate(_ClientEvent):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(_ClientEvent):
    type: Literal["response.cancel"]
    response_id: str | None = None


class OutputAudioBufferClear(_ClientEvent):
    type: Literal["output_audio_buffer.clear"]


ClientEvent = Annotated[
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ConversationItemCreate
    | ConversationItemTruncate
    | ConversationItemDelete
    | ConversationItemRetrieve
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear,
    Field(discriminator="type"),
]
CLIENT_EVENT_ADAPTER: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
CLIENT_EVENT_TYPES: tuple[str, ...] = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)

# -- server events ------------------------------------------------------------------------


class ServerEvent(BaseModel):
    """Base of every server event: ``event_id`` is filled in by the protocol when sent."""

    event_id: str = ""


class ErrorDetail(BaseModel):
    type: str = "invalid_request_error"
    code: str | None = None
    message: str
    param: str | None = None
    event_id: str | None = None


class ErrorEvent(ServerEvent):
    type: Literal["error"] = "error"
    error: ErrorDetail


class SessionEvent(ServerEvent):
    type: Literal["session.created", "session.updated"]
    session: dict[str, JsonValue]


class SpeechStartedEvent(ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str


class SpeechStoppedEvent(ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str


class CommittedEvent(ServerEvent):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: str | None = None


class ClearedEvent(ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


class ItemEvent(ServerEvent):
    type: Literal[
        "conversation.item.added", "conversation.item.done", "conversation.item.retrieved"
    ]
    item: Item
    previous_item_id: str | None = None


class ItemDeletedEvent(ServerEvent):
    type: Literal["conversation.item.deleted"] = "conversation.item.deleted"
    item_id: str


class ItemTruncatedEvent(ServerEvent):
    type: Literal["conversation.item.truncated"] = "conversation.item.truncated"
    item_id: str
    content_index: int
    audio_end_ms: int


class TranscriptionUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionCompletedEvent(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed"
    )
    item_id: str
    content_index: int = 0
    transcript: str
    usage: TranscriptionUsage


class Usage(BaseModel):
    """``response.done`` usage. earshot counts tokens as whitespace words of text (its LLM
    reports none) and audio as 1 token per 40 ms (25 Hz, REFERENCE.md §39.4.1 puts GPT-4o
    Realtime at ≈ 25 Hz × 8 codebooks; the factor 8 is not applied: no codec tokens exist)."""

    total_tokens: int
    input_tokens: int
    output_tokens: int
    input_token_details: dict[str, int]
    output_token_details: dict[str, int]


class StatusDetails(BaseModel):
    type: Literal["completed", "cancelled", "incomplete", "failed"]
    reason: str | None = None
    error: dict[str, str] | None = None


class ResponseObject(BaseModel):
    id: str
    object: Literal["realtime.response"] = "realtime.response"
    status: Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]
    status_details: StatusDetails | None = None
    output: list[Item] = Field(default_factory=list)
    conversation_id: str | None = None
    output_modalities: list[str]
    metadata: dict[str, str] | None = None
    usage: Usage | None = None


class ResponseEvent(ServerEvent):
    type: Literal["response.created", "response.done"]
    response: ResponseObject


class OutputItemEvent(ServerEvent):
    type: Literal["response.output_item.added", "response.output_item.done"]
    response_id: str
    output_index: int = 0
    item: Item


class ContentPartEvent(ServerEvent):
    type: Literal["response.content_part.added", "response.content_part.done"]
    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0
    part: ContentPart


class DeltaEvent(ServerEvent):
    """Audio (base64) or transcript/text deltas of one content part."""

    type: Literal[
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_text.delta",
    ]
    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0
    delta: str


class AudioDoneEvent(ServerEvent):
    type: Literal["response.output_audio.done"] = "response.output_audio.done"
    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0


class TranscriptDoneEvent(ServerEvent):
    type: Literal["response.output_audio_transcript.done"] = "response.output_audio_transcript.done"
    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0
    transcript: str


class TextDoneEvent(ServerEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0
    text: str


class EarshotLatencyEvent(ServerEvent):
    """earshot's extension: the latency record of one response, after its ``response.done``.

    Attributes:
        response_id, item_id: the response and its assistant item.
        marks_ms: session-clock marks (ms since the connection opened), as in ``turns.jsonl``;
            ``playout_start`` is when the first audio delta was sent.
        ttfat_ms: ``playout_start − speech_end`` (server side; null without a spoken turn).
        terms_ms: the TTFAT terms (``earshot.metrics.turn.TERMS``), summing to ``ttfat_ms``.
        measured_to: where the measurement stops: ``"server_send"`` (this endpoint cannot see
            the client's playback; network and device terms are 0 and not measured).
        interrupted: the reply was cut off; ``heard_text`` is what was kept.
    """

    type: Literal["earshot.latency"] = "earshot.latency"
    response_id: str
    item_id: str | None
    marks_ms: dict[str, float]
    ttfat_ms: float | None
    terms_ms: dict[str, float] | None
    measured_to: str = "server_send"
    user_text: str = ""
    agent_text: str = ""
    heard_text: str = ""
    interrupted: bool = False
