"""One Realtime response: its state and the event sequences that open and close it.

Order as the API sends it: ``response.created`` → ``response.output_item.added`` →
``conversation.item.added`` → ``response.content_part.added`` → deltas →
``response.output_audio.done`` → ``response.output_audio_transcript.done`` →
``response.content_part.done`` → ``response.output_item.done`` → ``conversation.item.done`` →
``response.done`` (then earshot's ``earshot.latency``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from earshot.metrics.turn import MARKS, decompose, ttfat
from earshot.protocols.audio_formats import OutputEncoder, WireFormat
from earshot.protocols.realtime import events as ev
from earshot.protocols.realtime.conversation import SAMPLES_PER_MS, ItemState

AUDIO_TOKEN_MS = 40.0
"""Usage counts one output audio token per 40 ms (25 Hz; REFERENCE.md §39.4.1)."""


@dataclass(slots=True)
class ResponseState:
    """A response in flight or done.

    Attributes:
        marks_ms: the latency marks: the user turn's (``speech_end``, ``end_of_turn``,
            ``stt_final``), the engine's LLM/TTS marks, and ``playout_queued`` /
            ``playout_start`` = when the first audio delta was sent.
        first_send_ms: session time of the first audio delta (None before).
        sent_samples: 16 kHz samples of audio sent so far.
    """

    response_id: str
    item_id: str
    audio: bool
    in_conversation: bool
    conversation_id: str | None
    metadata: dict[str, str] | None
    encoder_format: WireFormat
    marks_ms: dict[str, float] = field(default_factory=dict)
    user_text: str = ""
    input_words: int = 0
    transcript: str = ""
    first_send_ms: float | None = None
    sent_samples: int = 0
    finished: bool = False
    llm_error: str = ""
    item: ev.Item = field(init=False)
    part: ev.ContentPart = field(init=False)
    encoder: OutputEncoder = field(init=False)

    def __post_init__(self) -> None:
        kind: Literal["output_audio", "output_text"] = (
            "output_audio" if self.audio else "output_text"
        )
        self.part = ev.ContentPart(
            type=kind, transcript="" if self.audio else None, text=None if self.audio else ""
        )
        self.item = ev.Item(
            id=self.item_id, role="assistant", content=[self.part], status="in_progress"
        )
        self.encoder = OutputEncoder(self.encoder_format)

    @property
    def modalities(self) -> list[str]:
        return ["audio"] if self.audio else ["text"]

    def played_estimate_samples(self, now_ms: float) -> int:
        """Samples the client has played by ``now_ms`` if it plays in real time from the
        first delta (the server cannot see the client's playback)."""
        if self.first_send_ms is None:
            return 0
        elapsed = max(0.0, now_ms - self.first_send_ms)
        return min(self.sent_samples, int(elapsed * SAMPLES_PER_MS))

    def wire(self, status: str, details: ev.StatusDetails | None = None) -> ev.ResponseObject:
        return ev.ResponseObject(
            id=self.response_id,
            status=status,  # type: ignore[arg-type]
            status_details=details,
            output=[self.item] if status != "in_progress" else [],
            conversation_id=self.conversation_id,
            output_modalities=self.modalities,
            metadata=self.metadata,
            usage=self.usage() if status != "in_progress" else None,
        )

    def usage(self) -> ev.Usage:
        text_out = len(self.transcript.split())
        audio_out = round(self.sent_samples / SAMPLES_PER_MS / AUDIO_TOKEN_MS)
        return ev.Usage(
            total_tokens=self.input_words + text_out + audio_out,
            input_tokens=self.input_words,
            output_tokens=text_out + audio_out,
            input_token_details={
                "text_tokens": self.input_words,
                "audio_tokens": 0,
                "cached_tokens": 0,
            },
            output_token_details={"text_tokens": text_out, "audio_tokens": audio_out},
        )


def opening_events(response: ResponseState) -> Iterator[ev.ServerEvent]:
    """``response.created``, ``response.output_item.added``, ``response.content_part.added``
    (the protocol inserts ``conversation.item.added`` after the output item)."""
    rid = response.response_id
    yield ev.ResponseEvent(type="response.created", response=response.wire("in_progress"))
    yield ev.OutputItemEvent(type="response.output_item.added", response_id=rid, item=response.item)
    yield ev.ContentPartEvent(
        type="response.content_part.added",
        response_id=rid,
        item_id=response.item_id,
        part=response.part,
    )


def closing_events(
    response: ResponseState,
    status: str,
    reason: str | None,
    error: str,
    state: ItemState | None,
    tail: bytes,
) -> Iterator[ev.ServerEvent]:
    """The done events and ``response.done``; ``tail`` is the encoder's last audio (sent as a
    final delta when the response completed)."""
    import base64

    response.finished = True
    rid, iid = response.response_id, response.item_id
    if response.audio:
        if tail and status == "completed":
            yield ev.DeltaEvent(
                type="response.output_audio.delta",
                response_id=rid,
                item_id=iid,
                delta=base64.b64encode(tail).decode("ascii"),
            )
        yield ev.AudioDoneEvent(response_id=rid, item_id=iid)
        yield ev.TranscriptDoneEvent(response_id=rid, item_id=iid, transcript=response.transcript)
    else:
        yield ev.TextDoneEvent(response_id=rid, item_id=iid, text=response.transcript)
    response.item.status = "completed" if status == "completed" else "incomplete"
    if state is not None:
        state.full_text = response.transcript
    yield ev.ContentPartEvent(
        type="response.content_part.done", response_id=rid, item_id=iid, part=response.part
    )
    yield ev.OutputItemEvent(type="response.output_item.done", response_id=rid, item=response.item)
    if response.in_conversation:
        yield ev.ItemEvent(type="conversation.item.done", item=response.item)
    details = None
    if status != "completed":
        details = ev.StatusDetails(
            type=status,  # type: ignore[arg-type]
            reason=reason,
            error={"type": "server_error", "message": error} if error else None,
        )
    yield ev.ResponseEvent(type="response.done", response=response.wire(status, details))


def latency_event(response: ResponseState, state: ItemState | None) -> ev.EarshotLatencyEvent:
    """earshot's latency record of a finished response (see `ev.EarshotLatencyEvent`)."""
    marks = {k: round(v, 3) for k, v in response.marks_ms.items()}
    complete = all(name in response.marks_ms for name in MARKS)
    heard = response.transcript
    interrupted = False
    if state is not None:
        heard = state.text
        interrupted = state.truncated
    return ev.EarshotLatencyEvent(
        response_id=response.response_id,
        item_id=response.item_id,
        marks_ms=marks,
        ttfat_ms=round(ttfat(response.marks_ms), 3) if complete else None,
        terms_ms=(
            {k: round(v, 3) for k, v in decompose(response.marks_ms).items()} if complete else None
        ),
        user_text=response.user_text,
        agent_text=response.transcript,
        heard_text=heard,
        interrupted=interrupted,
    )
