"""The transport interface: how a caller's audio reaches a session and the reply reaches them.

A transport owns pacing, codecs, the network and the truth about playout. The session owns
everything between (listener, conversation, scheduler, jitter buffer). They meet at two
objects:

* the **transport** (`Transport`, implemented per medium: the recorded-caller file, a
  WebSocket, WebRTC, Twilio Media Streams, an OpenAI-Realtime client), whose `Transport.run`
  pumps audio both ways until the caller has gone or the input has ended, and which can be told
  to drop a response's queued audio (`Transport.clear`);
* the **session port** (`SessionPort`, implemented by the session), which the transport calls:
  `SessionPort.push_input` for every input frame, `SessionPort.pull_output` for every output
  frame it is ready to send, and `SessionPort.report_playout` whenever it learns what the
  caller's device has actually played.

Audio on both sides is the pipeline format: 1-D ``numpy.int16``, 16 kHz mono
(`earshot.audio.frames.SAMPLE_RATE_HZ`), one frame of ``samples_per_frame(frame_ms)`` samples
per call. Resampling and codecs (Opus, µ-law, base64 PCM) happen inside the transport.

All times are milliseconds on the **session clock** (`earshot.clock.Clock.now_ms`). A network
transport that knows a client's clock maps client times onto the session clock with its clock
sync and reports the bound on that mapping's error as ``sync_error_ms``; the raw client time is
kept beside it where a record has one.

Three shapes this fits:

* **File** (`earshot.transports.file.FileTransport`): ``run`` paces a recording frame by frame
  on the session clock; each tick it pulls one output frame, "plays" it at once (so it reports
  playout in the same tick) and delivers the input frame that finished arriving, with the
  agent audio played meanwhile as the echo-canceller far end. Network timing fields are None,
  so every network term is 0.
* **WebSocket / Twilio / Realtime**: ``run`` reads frames from a socket (``arrival_ms`` when
  they arrived, ``release_ms`` when the uplink jitter buffer released them, ``capture_ms`` from
  the client's timestamp through clock sync), sends output frames at its own pace (or as fast
  as the client accepts), and turns the client's playback messages into `PlayoutReport`.
* **WebRTC** (aiortc): the outgoing track's ``recv()`` calls `SessionPort.pull_output`; the
  incoming track's frames go to `SessionPort.push_input`; the page reports playout over the
  data channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from earshot.audio.frames import Pcm16


@dataclass(frozen=True, slots=True)
class InputFrame:
    """One frame of the caller's audio as the transport delivers it.

    Attributes:
        pcm: int16, 16 kHz mono, exactly ``samples_per_frame(frame_ms)`` samples (the
            transport pads a short last frame with zeros).
        capture_ms: session-clock time at which the frame's FIRST sample was captured by the
            caller's microphone. For a file, the frame's position in the recording; for a
            network client, its capture timestamp mapped through clock sync (or, lacking one,
            its arrival time minus the frame duration, and ``sync_error_ms`` says how far off
            that may be). ``speech_end`` and every listener decision are dated by it.
        far_end: int16, 16 kHz mono, same length as ``pcm``: what the caller's loudspeaker
            played while this frame was captured, sample aligned, the echo canceller's far-end
            reference. None when the transport cannot know it (a browser that runs its own echo
            cancellation); the session then runs no AEC on this frame.
        arrival_ms: session-clock time the frame's last byte reached the server, or None for a
            local source (file). ``arrival_ms - (capture_ms + frame_ms)`` is the frame's
            one-way uplink delay (the ``network_in`` term).
        release_ms: session-clock time the uplink jitter buffer released the frame to the
            session, or None without one. ``release_ms - arrival_ms`` is the
            ``uplink_jitter_buffer`` term.
        concealed: True when the frame was synthesized by loss concealment (Opus PLC/FEC,
            silence or repetition), not received.
        sync_error_ms: bound (ms, ≥ 0) on the error of ``capture_ms``'s mapping onto the
            session clock; 0 for a local source.
    """

    pcm: Pcm16
    capture_ms: float
    far_end: Pcm16 | None = None
    arrival_ms: float | None = None
    release_ms: float | None = None
    concealed: bool = False
    sync_error_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class OutputFrame:
    """One frame of agent audio leaving the server's jitter buffer toward the caller.

    Attributes:
        pcm: int16, 16 kHz mono, exactly the number of samples the transport asked for
            (silence-padded; all zeros when nothing is playing).
        response_id: the response whose audio the frame starts with, or None for silence. A
            frame can end one response and begin padding; it never mixes two responses'
            audio except at a response boundary (see `earshot.playout.jitter.JitterBuffer`).
        agent_samples: samples of agent audio (not padding) in ``pcm``.
        sent_ms: session-clock time the frame left the jitter buffer (the ``playout_start``
            mark of a response is the ``sent_ms`` of its first frame).
        response_samples: for ``response_id``, the index of the frame's first agent sample in
            that response's audio (samples since the response's first sample), so a client can
            report what it played per response.
    """

    pcm: Pcm16
    response_id: int | None
    agent_samples: int
    sent_ms: float
    response_samples: int = 0


@dataclass(frozen=True, slots=True)
class PlayoutReport:
    """What the caller's device has played of one response, as the transport learned it.

    Reports are cumulative and may come in any number; the session keeps the latest per
    response id. The played position for heard words and the barge-in record is the
    ``played_samples`` of the latest report, never what the server merely sent.

    Attributes:
        response_id: the response (as in `OutputFrame.response_id`).
        played_samples: samples of that response played by the device so far (16 kHz),
            counted from its first sample.
        at_ms: session-clock time at which sample ``played_samples`` had finished playing.
        first_sample_ms: session-clock time the response's first sample was played (the
            ``heard_start`` mark), or None if the transport does not know it (then the session
            uses ``playout_start``).
        first_received_ms: session-clock time the client received the response's first audio
            (for ``network_out`` = first_received − playout_start and ``client_playout`` =
            first_sample − first_received), or None.
        client_ms: the raw client-clock time of this report (ms, the client's own origin), or
            None for a local transport. Kept for diagnostics; the session does not use it.
        sync_error_ms: bound (ms, ≥ 0) on the error of the session-clock times above; 0 for a
            local transport.
    """

    response_id: int
    played_samples: int
    at_ms: float
    first_sample_ms: float | None = None
    first_received_ms: float | None = None
    client_ms: float | None = None
    sync_error_ms: float = 0.0


class SessionPort(Protocol):
    """What a transport may call on the session. Implemented by `earshot.session.Session`.

    Every method is synchronous, non-blocking and safe to call from the event loop thread only
    (a transport with its own threads hands over with ``loop.call_soon_threadsafe``). None of
    them raises on a well-formed argument; a malformed frame raises ValueError naming it.
    """

    @property
    def frame_ms(self) -> int:
        """Frame duration (ms) of the session: 10, 20 or 40."""
        ...

    @property
    def idle(self) -> bool:
        """No user turn is open, no response is pending and every input frame pushed so far
        has been processed: a file transport whose input has ended may stop."""
        ...

    def push_input(self, frame: InputFrame) -> None:
        """Hand one input frame to the session (in capture order; frames must be contiguous:
        a transport conceals a lost frame rather than skipping it).

        Raises:
            ValueError: ``frame.pcm`` is not 1-D int16 of one frame's length.
        """
        ...

    def pull_output(self, num_samples: int, now_ms: float) -> OutputFrame:
        """Take the next output frame of ``num_samples`` samples from the jitter buffer, to
        leave toward the caller at session time ``now_ms``. Call once per output frame, at the
        pace the medium plays it (the file and WebSocket transports: once per frame tick)."""
        ...

    def report_playout(self, report: PlayoutReport) -> None:
        """Tell the session what the device has played of a response (see `PlayoutReport`).

        A transport without device feedback reports each frame as played when it is sent.
        """
        ...


@runtime_checkable
class Transport(Protocol):
    """One call's medium: frames in (stamped on the session clock), frames out, playout back.

    Attributes:
        name: short description for reports (``"file"``, ``"websocket"``, ``"webrtc"``...).
        reports_device_playout: True when `PlayoutReport` comes from the caller's device
            (``heard_start`` and the network terms are then measured); False when playout is
            taken to happen as frames leave the server (file transport: network terms 0).
    """

    name: str
    reports_device_playout: bool

    async def run(self, port: SessionPort) -> None:
        """Pump audio both ways until the input has ended or the caller has gone.

        Runs inside the session's TaskGroup. Returns normally at the end of the input (a
        file transport first keeps playing until ``port.idle`` or its tail limit) or when the
        caller hung up or vanished: a transport never raises for a client's disappearance or a
        malformed message; it ends the call and returns. Cancelling the task hangs up.
        `asyncio.CancelledError` must propagate.

        Raises:
            TransportError: the medium failed in a way that is not the caller's doing (a file
                that cannot be read mid-call); the session records it, writes the open turns
                as unfinished and raises it to its caller.
        """
        ...

    def clear(self, response_id: int) -> None:
        """Barge-in: drop every not-yet-played sample of ``response_id`` queued in the
        transport or the client (a network transport sends the client a clear message).

        Non-blocking, idempotent, and a no-op for an unknown id. A final `PlayoutReport` for
        the response may still arrive afterwards (what was played before the clear took
        effect); the session keeps it.
        """
        ...


class TransportError(Exception):
    """The medium failed (not the caller's doing); the message says what and how to fix it."""
