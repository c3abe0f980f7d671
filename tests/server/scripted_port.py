"""A scripted session port for transport tests: records what the transport delivers and plays
one known reply, so the transport's timing can be checked without a session (the session
itself is tested on the shipped fakes elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.clock import Clock
from earshot.server.registry import Admission
from earshot.server.stack import CallSummary, Notify
from earshot.transports.base import InputFrame, OutputFrame, PlayoutReport, Transport


def tone(num_samples: int, hz: float = 440.0) -> Pcm16:
    t = np.arange(num_samples) / 16000.0
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


@dataclass
class ScriptedPort:
    """After ``trigger_frames`` input frames, queue ``reply`` (response 1) for playout."""

    trigger_frames: int = 25
    reply: Pcm16 = field(default_factory=lambda: tone(8000))
    frames: list[InputFrame] = field(default_factory=list)
    reports: list[PlayoutReport] = field(default_factory=list)
    sent: list[OutputFrame] = field(default_factory=list)
    _pos: int = -1

    @property
    def frame_ms(self) -> int:
        return 20

    @property
    def idle(self) -> bool:
        done = self._pos >= len(self.reply)
        played = bool(self.reports) and self.reports[-1].played_samples >= len(self.reply)
        return (self._pos < 0 and len(self.frames) < self.trigger_frames) or (done and played)

    def push_input(self, frame: InputFrame) -> None:
        if frame.pcm.dtype != np.int16 or frame.pcm.shape != (320,):
            raise ValueError("bad frame")
        self.frames.append(frame)
        if len(self.frames) == self.trigger_frames and self._pos < 0:
            self._pos = 0

    def pull_output(self, num_samples: int, now_ms: float) -> OutputFrame:
        if 0 <= self._pos < len(self.reply):
            chunk = self.reply[self._pos : self._pos + num_samples]
            pcm = np.zeros(num_samples, np.int16)
            pcm[: len(chunk)] = chunk
            out = OutputFrame(pcm, 1, len(chunk), now_ms, self._pos)
            self._pos += len(chunk)
        else:
            out = OutputFrame(np.zeros(num_samples, np.int16), None, 0, now_ms)
        self.sent.append(out)
        return out

    def report_playout(self, report: PlayoutReport) -> None:
        self.reports.append(report)


class PortStack:
    """A `CallStack` that runs the transport against a fresh `ScriptedPort` per call."""

    name = "scripted-port"

    def __init__(self, **port_args: object) -> None:
        self.port_args = port_args
        self.ports: list[ScriptedPort] = []
        self.transports: list[Transport] = []

    async def run_call(
        self, transport: Transport, clock: Clock, admission: Admission, notify: Notify
    ) -> CallSummary:
        port = ScriptedPort(**self.port_args)  # type: ignore[arg-type]
        self.ports.append(port)
        self.transports.append(transport)
        await transport.run(port)
        return CallSummary(turns=1 if port.reports else 0, out_dir=str(admission.out_dir))
