"""A call's stereo recording on the session clock, streamed to disk as the call goes.

Network transports see the caller's frames (at their capture time) and the agent's frames (at
the time they leave the server) at different moments, so the two tracks are buffered until both
have passed a point and then written, left = caller, right = agent, into
`earshot.transports.file.WavRecorder`. Each track is kept contiguous from its first frame (a
concealed uplink frame fills its slot; a downlink tick with no agent audio is silence), so
memory holds at most the skew between the two tracks (bounded by ``max_skew_ms``; beyond it
the lagging track is padded with silence).
"""

from __future__ import annotations

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples
from earshot.transports.file import Recorder


class TimelineRecorder:
    """Interleaves two independently timed tracks into a `Recorder`.

    Args:
        recorder: where stereo blocks go (``WavRecorder`` for ``conversation.wav``).
        max_skew_ms: most one track may run ahead before the other is padded (ms).
    """

    def __init__(self, recorder: Recorder, max_skew_ms: float = 2_000.0) -> None:
        self.recorder = recorder
        self.max_skew = ms_to_samples(max_skew_ms)
        self._written = 0  # samples written to both channels
        self._user: list[Pcm16] = []
        self._agent: list[Pcm16] = []
        self._user_end: int | None = None  # absolute sample index past the last user sample
        self._agent_end: int | None = None
        self._closed = False

    @staticmethod
    def _place(chunks: list[Pcm16], end: int | None, at_ms: float, pcm: Pcm16, written: int) -> int:
        start = ms_to_samples(at_ms) if end is None else end
        if end is None and start > written:
            chunks.append(np.zeros(start - written, np.int16))
        elif end is None:
            pcm = pcm[written - start :] if start < written else pcm
            start = written
        chunks.append(pcm)
        return start + len(pcm)

    def user(self, capture_ms: float, pcm: Pcm16) -> None:
        """A caller frame captured at ``capture_ms`` (session clock; int16 16 kHz)."""
        self._user_end = self._place(self._user, self._user_end, capture_ms, pcm, self._written)
        self._flush()

    def agent(self, sent_ms: float, pcm: Pcm16) -> None:
        """An agent frame that left the server at ``sent_ms`` (session clock)."""
        self._agent_end = self._place(self._agent, self._agent_end, sent_ms, pcm, self._written)
        self._flush()

    def _flush(self, final: bool = False) -> None:
        u_end = self._user_end if self._user_end is not None else self._written
        a_end = self._agent_end if self._agent_end is not None else self._written
        upto = max(u_end, a_end) if final else min(u_end, a_end)
        if not final and max(u_end, a_end) - upto > self.max_skew:
            upto = max(u_end, a_end) - self.max_skew
        n = upto - self._written
        if n <= 0:
            return
        user = self._take(self._user, n)
        agent = self._take(self._agent, n)
        self.recorder.write(user, agent, None)
        self._written = upto
        if self._user_end is not None and self._user_end < upto:
            self._user_end = upto
        if self._agent_end is not None and self._agent_end < upto:
            self._agent_end = upto

    @staticmethod
    def _take(chunks: list[Pcm16], n: int) -> Pcm16:
        out = np.zeros(n, np.int16)
        filled = 0
        while chunks and filled < n:
            c = chunks[0]
            k = min(n - filled, len(c))
            out[filled : filled + k] = c[:k]
            filled += k
            if k == len(c):
                chunks.pop(0)
            else:
                chunks[0] = c[k:]
        return out

    @property
    def duration_s(self) -> float:
        return self._written / SAMPLE_RATE_HZ

    def close(self) -> None:
        """Write what is left (the shorter track padded with silence) and close the file."""
        if not self._closed:
            self._closed = True
            self._flush(final=True)
            self.recorder.close()
