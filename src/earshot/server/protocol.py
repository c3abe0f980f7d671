"""The WebSocket call protocol: binary audio frames and JSON control messages.

The schema is documented for client authors in ``docs/websocket.md``; this module is its
source of truth. Binary messages carry audio, text messages carry one JSON control object each
with a ``type`` field. Every time a client sends is on **its own clock** (ms, any origin, e.g.
``performance.now()``); every time the server sends is on the call's **session clock** (ms since
the call started). The clock-sync exchange (``sync`` / ``sync_reply``) maps one onto the other.

Binary uplink (client → server), little-endian, 16-byte header then the payload:

======  ======  ===========================================================================
offset  type    field
======  ======  ===========================================================================
0       u8      codec: 1 = PCM16 (16 kHz mono, one frame: 320 samples at 20 ms), 2 = Opus
1       u8      flags (0)
2       u16     reserved (0)
4       u32     seq: frame number from 0, one per ``frame_ms`` of audio, no gaps at the sender
8       f64     capture_ms: client clock when the frame's first sample was captured
======  ======  ===========================================================================

Binary downlink (server → client), 24-byte header then PCM16 16 kHz mono (or Opus):

======  ======  ===========================================================================
0       u8      codec (as above)
1       u8      flags: bit 0 = first frame of its response
2       u16     reserved
4       u32     seq: downlink frame number
8       u32     response_id: the reply this audio belongs to
12      u32     response_sample: index of the frame's first sample within that reply
16      f64     sent_ms: session clock when the frame left the server's jitter buffer
======  ======  ===========================================================================
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
Codec = Literal["pcm16", "opus"]
FrameMs = Literal[10, 20, 40]
CODEC_PCM16 = 1
CODEC_OPUS = 2
CODECS = {"pcm16": CODEC_PCM16, "opus": CODEC_OPUS}
UPLINK_HEADER = struct.Struct("<BBHId")
DOWNLINK_HEADER = struct.Struct("<BBHIIId")
FLAG_FIRST = 1


class ProtocolError(ValueError):
    """A message that breaks the protocol; the text is sent to the client before closing."""


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- client → server


class Hello(_Msg):
    """First message of a call: what the client sends and expects."""

    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    codec: Codec = "pcm16"
    frame_ms: FrameMs = 20
    client: str = Field(default="unknown", max_length=200)


class SyncReply(_Msg):
    """The client's answer to `Sync`: its receive (t1) and send (t2) times, its own clock."""

    type: Literal["sync_reply"] = "sync_reply"
    id: int
    t0_ms: float
    t1_ms: float
    t2_ms: float


class Playback(_Msg):
    """What the client's device has played of one reply (cumulative; send as often as you
    like, and once more when the reply ends or is cleared).

    Attributes:
        played_samples: samples of the reply that have finished playing (16 kHz).
        at_ms: client clock when sample ``played_samples`` finished playing.
        first_sample_ms: client clock when the reply's first sample reached the speaker
            (Web Audio: the scheduled start time mapped to ``performance.now()``, plus
            ``outputLatency``).
        first_received_ms: client clock when the reply's first audio frame arrived.
    """

    type: Literal["playback"] = "playback"
    response_id: int = Field(ge=1)
    played_samples: int = Field(ge=0)
    at_ms: float
    first_sample_ms: float | None = None
    first_received_ms: float | None = None


class End(_Msg):
    """The caller has no more audio (a recording ended, or the user pressed Hang up)."""

    type: Literal["end"] = "end"


ClientMessage = Annotated[Hello | SyncReply | Playback | End, Field(discriminator="type")]
_CLIENT = TypeAdapter(ClientMessage)


# ---------------------------------------------------------------- server → client


class Ready(_Msg):
    """The call is admitted and clock sync has its first estimate: start sending audio."""

    type: Literal["ready"] = "ready"
    call_id: str
    codec: Codec
    frame_ms: int
    sample_rate_hz: int = 16_000


class Sync(_Msg):
    """Clock-sync probe: answer with `SyncReply` at once."""

    type: Literal["sync"] = "sync"
    id: int
    t0_ms: float


class Clear(_Msg):
    """Barge-in: stop playing ``response_id`` now and drop what is queued of it."""

    type: Literal["clear"] = "clear"
    response_id: int


class ResponseStart(_Msg):
    """WebRTC only: the first frame of ``response_id`` left the server at ``sent_ms`` (the
    audio itself goes over the media track; the page dates its first audible sample)."""

    type: Literal["response_start"] = "response_start"
    response_id: int
    sent_ms: float
    num_samples_hint: int = 0


class Transcript(_Msg):
    """The caller's words: a partial while they speak, then the final one of the turn."""

    type: Literal["transcript"] = "transcript"
    text: str
    final: bool


class AgentText(_Msg):
    """The agent's reply text so far and, once known, the part the caller heard."""

    type: Literal["agent_text"] = "agent_text"
    response_id: int
    text: str
    heard_text: str | None = None


class TurnDone(_Msg):
    """One finished turn: its ``turns.jsonl`` record and the TTFAT percentiles so far."""

    type: Literal["turn"] = "turn"
    record: dict[str, Any]
    ttfat_p50_ms: float | None
    ttfat_p95_ms: float | None


class ErrorMsg(_Msg):
    """The call ends because of ``code`` (``server_full``, ``bad_message``, ``too_large``,
    ``forbidden``, ``internal``); ``message`` says what to fix."""

    type: Literal["error"] = "error"
    code: str
    message: str


class Bye(_Msg):
    """The call is over; ``out_dir`` is the folder its outputs were written into."""

    type: Literal["bye"] = "bye"
    call_id: str
    out_dir: str
    turns: int


ServerMessage = Annotated[
    Ready | Sync | Clear | ResponseStart | Transcript | AgentText | TurnDone | ErrorMsg | Bye,
    Field(discriminator="type"),
]
_SERVER = TypeAdapter(ServerMessage)


def parse_client(text: str) -> Hello | SyncReply | Playback | End:
    """One client text message.

    Raises:
        ProtocolError: not JSON, or not one of the client messages (the text says which field).
    """
    try:
        return _CLIENT.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError(f"bad control message ({where}: {first['msg']})") from None


def parse_server(
    text: str,
) -> Ready | Sync | Clear | ResponseStart | Transcript | AgentText | TurnDone | ErrorMsg | Bye:
    """One server text message (for clients).

    Raises:
        ProtocolError: not a server message.
    """
    try:
        return _SERVER.validate_json(text)
    except ValidationError as exc:
        raise ProtocolError(f"bad server message: {exc.errors()[0]['msg']}") from None


def dump(msg: BaseModel) -> str:
    """A message as the JSON text sent on the wire."""
    return msg.model_dump_json()


@dataclass(frozen=True, slots=True)
class UplinkAudio:
    """A decoded uplink binary message (`UPLINK_HEADER` + payload)."""

    codec: int
    seq: int
    capture_ms: float
    payload: bytes


def pack_uplink(codec: int, seq: int, capture_ms: float, payload: bytes) -> bytes:
    return UPLINK_HEADER.pack(codec, 0, 0, seq, capture_ms) + payload


def unpack_uplink(data: bytes, expected_codec: int, pcm_frame_bytes: int) -> UplinkAudio:
    """Parse one uplink audio message.

    Raises:
        ProtocolError: short header, wrong codec, or a PCM payload that is not one frame.
    """
    if len(data) < UPLINK_HEADER.size:
        raise ProtocolError(
            f"audio message of {len(data)} bytes is shorter than the {UPLINK_HEADER.size}-byte "
            "header (see docs/websocket.md)"
        )
    codec, _flags, _res, seq, capture_ms = UPLINK_HEADER.unpack_from(data)
    if codec != expected_codec:
        raise ProtocolError(
            f"audio codec {codec} does not match the hello's codec {expected_codec}"
        )
    payload = bytes(data[UPLINK_HEADER.size :])
    if codec == CODEC_PCM16 and len(payload) != pcm_frame_bytes:
        raise ProtocolError(
            f"PCM16 audio frame of {len(payload)} bytes; expected {pcm_frame_bytes} "
            "(one frame of 16 kHz mono int16)"
        )
    if not payload:
        raise ProtocolError("empty audio frame")
    return UplinkAudio(codec, seq, float(capture_ms), payload)


@dataclass(frozen=True, slots=True)
class DownlinkAudio:
    """A decoded downlink binary message (`DOWNLINK_HEADER` + payload)."""

    codec: int
    first: bool
    seq: int
    response_id: int
    response_sample: int
    sent_ms: float
    payload: bytes


def pack_downlink(
    codec: int,
    first: bool,
    seq: int,
    response_id: int,
    response_sample: int,
    sent_ms: float,
    payload: bytes,
) -> bytes:
    flags = FLAG_FIRST if first else 0
    header = DOWNLINK_HEADER.pack(codec, flags, 0, seq, response_id, response_sample, sent_ms)
    return header + payload


def unpack_downlink(data: bytes) -> DownlinkAudio:
    """Parse one downlink audio message (for clients).

    Raises:
        ProtocolError: shorter than the header.
    """
    if len(data) < DOWNLINK_HEADER.size:
        raise ProtocolError(f"downlink audio message of {len(data)} bytes is too short")
    codec, flags, _r, seq, rid, rsample, sent_ms = DOWNLINK_HEADER.unpack_from(data)
    return DownlinkAudio(
        codec,
        bool(flags & FLAG_FIRST),
        seq,
        rid,
        rsample,
        float(sent_ms),
        bytes(data[DOWNLINK_HEADER.size :]),
    )


def json_schema() -> dict[str, Any]:
    """JSON Schema of every control message, both directions (for docs and client authors)."""
    return {
        "client_to_server": _CLIENT.json_schema(),
        "server_to_client": _SERVER.json_schema(),
    }
