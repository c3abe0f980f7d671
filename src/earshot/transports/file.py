"""The file transport: a recorded caller in, the conversation recorded as it goes.

The caller's recording is streamed from disk in blocks (`SoundFileSource`: any rate or channel
count soundfile reads, downmixed and resampled to 16 kHz mono on the fly) or taken from memory
(`ArraySource`), and paced on the session clock as if it arrived live: real time under
`SystemClock`, faster under `SimulatedClock`. Each frame tick the transport

1. delivers the input frame that has just finished arriving, after the simulated room
   (`earshot.echo.path.MicMixer`: the caller + the echo of what the loudspeaker played during
   that frame + background noise), with the played frame as the echo canceller's far end;
2. pulls the next output frame and "plays" it at once, reporting the playout in the same tick;
3. hands the caller, agent and microphone frames to a recorder (`WavRecorder` streams
   ``conversation.wav`` to disk: stereo 16 kHz, left = caller, right = agent, sample aligned on
   the session clock, so a listener hears exactly the gaps the caller would).

Network terms are zero. Memory is bounded: one read block, one frame of each track.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr

from earshot import shutdown
from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, samples_per_frame, samples_to_ms, to_int16
from earshot.audio.io import AudioFileError, read_audio, write_wav_atomic
from earshot.clock import Clock
from earshot.echo.path import MicMixer
from earshot.transports.base import InputFrame, PlayoutReport, SessionPort, TransportError

_BLOCK_S = 1.0
"""Seconds of the input file read at a time."""


class CallerSource(Protocol):
    """The caller's audio, read in order."""

    @property
    def exhausted(self) -> bool:
        """No sample is left: the next `read` returns an empty array."""
        ...

    def read(self, num_samples: int) -> Pcm16:
        """Up to ``num_samples`` int16 16 kHz mono samples (fewer only at the end)."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class ArraySource:
    """A caller already in memory (int16 16 kHz mono), e.g. a track an evaluation built.

    Raises:
        ValueError: ``pcm`` is not 1-D int16.
    """

    def __init__(self, pcm: Pcm16) -> None:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"user audio must be 1-D int16 at 16 kHz, got {pcm.dtype} {pcm.shape}")
        self._pcm = pcm
        self._pos = 0

    @property
    def num_samples(self) -> int:
        return len(self._pcm)

    @property
    def exhausted(self) -> bool:
        return self._pos >= len(self._pcm)

    def read(self, num_samples: int) -> Pcm16:
        out = self._pcm[self._pos : self._pos + num_samples]
        self._pos += len(out)
        return out

    def close(self) -> None:
        pass


class SoundFileSource:
    """A recording streamed from disk: blocks of ~1 s, downmixed and resampled (soxr) to
    16 kHz mono int16. A mono 16 kHz PCM16 file is passed through bit-exact. Non-finite
    samples (NaN, inf) are read as 0.

    Raises:
        AudioFileError: the file is missing, unreadable, or holds no samples.
        TransportError: (from `read`) the file became unreadable mid-recording.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if p.is_dir():
            raise AudioFileError(f"{p}: is a folder; give the path of one recording file inside it")
        if not p.is_file():
            raise AudioFileError(f"{p}: no such file; give the path of a WAV/FLAC/OGG recording")
        try:
            self._file = sf.SoundFile(str(p))
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise AudioFileError(
                f"{p}: cannot read it as audio ({exc}); convert it to a WAV file, e.g. "
                f"`ffmpeg -i {p.name} -ar 16000 -ac 1 out.wav`"
            ) from exc
        if self._file.frames == 0:
            self._file.close()
            raise AudioFileError(
                f"{p}: the file holds no audio samples; record or pick another file"
            )
        self.path = p
        self.rate_hz = int(self._file.samplerate)
        self._exact = (
            self._file.channels == 1
            and self.rate_hz == SAMPLE_RATE_HZ
            and self._file.subtype == "PCM_16"
        )
        self._resampler = (
            None
            if self.rate_hz == SAMPLE_RATE_HZ
            else soxr.ResampleStream(self.rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32")
        )
        self._pending = np.zeros(0, dtype=np.int16)
        self._eof = False

    @property
    def duration_ms(self) -> float:
        """Length of the recording (ms)."""
        return float(self._file.frames) * 1000.0 / self.rate_hz

    @property
    def exhausted(self) -> bool:
        if not self._eof and len(self._pending) == 0:
            self._fill()
        return self._eof and len(self._pending) == 0

    def read(self, num_samples: int) -> Pcm16:
        while len(self._pending) < num_samples and not self._eof:
            self._fill()
        out, self._pending = self._pending[:num_samples], self._pending[num_samples:]
        return out

    def close(self) -> None:
        self._file.close()

    def _fill(self) -> None:
        try:
            self._read_block()
        except (sf.LibsndfileError, RuntimeError) as exc:
            self._eof = True
            raise TransportError(
                f"{self.path}: reading failed mid-recording ({exc}); check the file or disk"
            ) from exc

    def _read_block(self) -> None:
        block = max(1, int(self.rate_hz * _BLOCK_S))
        if self._exact:
            data = self._file.read(block, dtype="int16", always_2d=True)[:, 0]
            self._eof = len(data) < block
            self._pending = np.concatenate([self._pending, data])
            return
        raw = self._file.read(block, dtype="float32", always_2d=True)
        self._eof = len(raw) < block
        mono = np.nan_to_num(raw.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        if self._resampler is not None:
            mono = np.asarray(self._resampler.resample_chunk(mono, last=self._eof), np.float32)
        self._pending = np.concatenate([self._pending, to_int16(mono)])


class Recorder(Protocol):
    """Receives the call's three tracks frame by frame (int16 16 kHz, equal lengths)."""

    def write(self, user: Pcm16, agent: Pcm16, mic: Pcm16 | None) -> None: ...

    def close(self) -> None: ...


class WavRecorder:
    """Streams ``conversation.wav`` (stereo PCM16 16 kHz, left caller, right agent) and,
    with a room, ``mic.wav`` (what the microphone heard) to disk as the call goes.

    Files are written under temporary names beside the targets and renamed on `close`, so a
    reader never sees a half-written file under the final name.
    """

    def __init__(
        self, conversation_path: str | os.PathLike[str], mic_path: str | os.PathLike[str] | None
    ) -> None:
        self._targets: list[tuple[sf.SoundFile, str, Path]] = []
        self._conv = self._open(Path(conversation_path), 2)
        self._mic = self._open(Path(mic_path), 1) if mic_path is not None else None

    def _open(self, path: Path, channels: int) -> sf.SoundFile:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        shutdown.register_temp(Path(tmp))  # a second Ctrl-C mid-call removes it
        f = sf.SoundFile(tmp, "w", SAMPLE_RATE_HZ, channels, "PCM_16", format="WAV")
        self._targets.append((f, tmp, path))
        return f

    def write(self, user: Pcm16, agent: Pcm16, mic: Pcm16 | None) -> None:
        # buffer_write: no per-call cffi cast (SoundFile.write's cast cache grows to ~1 MB)
        self._conv.buffer_write(np.stack([user, agent], axis=1).tobytes(), dtype="int16")
        if self._mic is not None and mic is not None:
            self._mic.buffer_write(np.ascontiguousarray(mic).tobytes(), dtype="int16")

    def close(self) -> None:
        for f, tmp, path in self._targets:
            if not f.closed:
                f.close()
                os.replace(tmp, path)
                shutdown.release_temp(Path(tmp))


class MemoryRecorder:
    """Keeps the tracks in preallocated arrays of a fixed capacity (for evaluations over
    finite synthesized tracks); frames past the capacity are dropped and counted.

    Args:
        capacity_samples: most samples kept per track.
    """

    def __init__(self, capacity_samples: int) -> None:
        self._user = np.zeros(capacity_samples, dtype=np.int16)
        self._agent = np.zeros(capacity_samples, dtype=np.int16)
        self._mic = np.zeros(capacity_samples, dtype=np.int16)
        self._has_mic = False
        self.num_samples = 0
        self.dropped_samples = 0

    def write(self, user: Pcm16, agent: Pcm16, mic: Pcm16 | None) -> None:
        start = self.num_samples
        n = min(len(agent), len(self._agent) - start)
        self.dropped_samples += len(agent) - n
        self._user[start : start + n] = user[:n]
        self._agent[start : start + n] = agent[:n]
        if mic is not None:
            self._has_mic = True
            self._mic[start : start + n] = mic[:n]
        self.num_samples += n

    def close(self) -> None:
        pass

    def agent_track(self) -> Pcm16:
        """The agent output track from session time 0 (int16 16 kHz)."""
        return self._agent[: self.num_samples]

    def user_track(self) -> Pcm16:
        """The caller's track as recorded (int16 16 kHz)."""
        return self._user[: self.num_samples]

    def mic_track(self) -> Pcm16 | None:
        """The simulated microphone (int16 16 kHz), or None without a room."""
        return self._mic[: self.num_samples] if self._has_mic else None


class FileTransport:
    """A recorded caller paced on the session clock (see the module docstring).

    Args:
        source: the caller's audio.
        clock: the session clock (paces the ticks).
        mic: the simulated room; None feeds the caller's audio to the session as is.
        recorder: where the tracks go (None: nowhere).
        max_tail_ms: after the input ends, how long to wait for pending replies (ms).
        on_frame: called after every tick with the tick time (ms), e.g. for progress.
    """

    name = "file"
    reports_device_playout = False

    def __init__(
        self,
        source: CallerSource,
        clock: Clock,
        *,
        mic: MicMixer | None = None,
        recorder: Recorder | None = None,
        max_tail_ms: float = 30_000.0,
        on_frame: Callable[[float], None] | None = None,
    ) -> None:
        self.source = source
        self.clock = clock
        self.mic = mic
        self.recorder = recorder
        self.max_tail_ms = max_tail_ms
        self.on_frame = on_frame
        self.cleared: set[int] = set()
        self.input_ms = 0.0
        """Ms of the caller's recording delivered so far."""

    def clear(self, response_id: int) -> None:
        # Frames are played the tick they are pulled: nothing of a response is queued here.
        self.cleared.add(response_id)

    async def run(self, port: SessionPort) -> None:
        """Pace the recording until it has ended and the session is idle (or the tail limit
        after its end has passed). The recorder is closed on the way out, even on Ctrl-C."""
        frame_ms = port.frame_ms
        n = samples_per_frame(frame_ms)
        tail_frames = int(self.max_tail_ms // frame_ms)
        played: dict[int, int] = {}
        agent_prev = np.zeros(n, dtype=np.int16)
        ended_at: int | None = None  # tick at which the last real input frame was delivered
        k = 0
        try:
            while ended_at is None or k <= ended_at + tail_frames:
                tick_ms = float(k * frame_ms)
                await self.clock.sleep_until_ms(tick_ms)
                if ended_at is not None and k > ended_at and port.idle:
                    break  # the input has ended, been processed, and every reply has played
                if k > 0:
                    self._deliver(port, k - 1, n, agent_prev)
                    if ended_at is None and self.source.exhausted:
                        ended_at = k
                elif self.source.exhausted:
                    ended_at = 0
                out = port.pull_output(n, tick_ms)
                rid = out.response_id
                if rid is not None and out.agent_samples:
                    total = out.response_samples + out.agent_samples
                    played[rid] = total
                    port.report_playout(
                        PlayoutReport(
                            rid,
                            total,
                            tick_ms + samples_to_ms(out.agent_samples),
                            first_sample_ms=tick_ms if out.response_samples == 0 else None,
                        )
                    )
                agent_prev = out.pcm
                if self.on_frame is not None:
                    self.on_frame(tick_ms)
                k += 1
            if self.recorder is not None and k > 0:
                # The last frame played has no input frame delivered beside it yet.
                self.recorder.write(np.zeros(n, dtype=np.int16), agent_prev, None)
        finally:
            self.source.close()
            if self.recorder is not None:
                self.recorder.close()

    def _deliver(self, port: SessionPort, index: int, n: int, far_end: Pcm16) -> None:
        user = self.source.read(n)
        self.input_ms += samples_to_ms(len(user))
        if len(user) < n:
            user = np.concatenate([user, np.zeros(n - len(user), dtype=np.int16)])
        mic = self.mic.process(user, far_end) if self.mic is not None else None
        port.push_input(
            InputFrame(mic if mic is not None else user, float(index * port.frame_ms), far_end)
        )
        if self.recorder is not None:
            self.recorder.write(user, far_end, mic)


def load_caller(path: str | os.PathLike[str]) -> Pcm16:
    """Read a whole recorded caller as int16 16 kHz mono (for tools that need it in memory;
    the transport itself streams with `SoundFileSource`).

    Raises:
        AudioFileError: missing, unreadable or empty file.
    """
    return read_audio(path, SAMPLE_RATE_HZ)


def conversation_track(user: Pcm16, agent: Pcm16) -> Pcm16:
    """Stereo int16 ``(num_samples, 2)``: left = user, right = agent, zero-padded to one length."""
    n = max(len(user), len(agent))
    out = np.zeros((n, 2), dtype=np.int16)
    out[: len(user), 0] = user
    out[: len(agent), 1] = agent
    return out


def write_conversation(path: str | os.PathLike[str], user: Pcm16, agent: Pcm16) -> None:
    """Write ``conversation.wav`` (stereo 16 kHz PCM16, left user, right agent) atomically."""
    write_wav_atomic(path, conversation_track(user, agent), SAMPLE_RATE_HZ)
