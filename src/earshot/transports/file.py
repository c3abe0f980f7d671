"""The file transport: a recorded caller in, the agent track written beside it.

The user track is paced on the session clock as if it arrived live (real time under
`SystemClock`, faster under `SimulatedClock`). The agent's output frames are laid on the same
clock, so ``conversation.wav`` holds the caller on the left and the agent on the right, sample
aligned: a listener hears exactly the gaps the caller would. Network terms are zero.
"""

from __future__ import annotations

import os

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.audio.io import read_audio, write_wav_atomic


def load_caller(path: str | os.PathLike[str]) -> Pcm16:
    """Read a recorded caller as int16 16 kHz mono (any rate/channels soundfile reads).

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
