"""The call recording interleaves two independently timed tracks on one timeline."""

import numpy as np

from earshot.server.recording import TimelineRecorder
from earshot.transports.file import MemoryRecorder


def test_tracks_land_at_their_times_and_stay_aligned() -> None:
    mem = MemoryRecorder(16000 * 5)
    rec = TimelineRecorder(mem)
    user = np.full(320, 100, np.int16)
    agent = np.full(320, 200, np.int16)
    for k in range(10):  # caller frames from 100 ms, agent frames from 300 ms
        rec.user(100.0 + 20 * k, user)
    for k in range(5):
        rec.agent(300.0 + 20 * k, agent)
    rec.close()
    u, a = mem.user_track(), mem.agent_track()
    assert len(u) == len(a) == 16 * 400
    assert not u[: 16 * 100].any() and (u[16 * 100 : 16 * 300] == 100).all()
    assert not a[: 16 * 300].any() and (a[16 * 300 : 16 * 400] == 200).all()


def test_memory_is_bounded_by_the_skew() -> None:
    mem = MemoryRecorder(16000 * 20)
    rec = TimelineRecorder(mem, max_skew_ms=500.0)
    frame = np.ones(320, np.int16)
    for k in range(500):  # ten seconds of caller, no agent frame at all
        rec.user(20.0 * k, frame)
    held = sum(len(c) for c in rec._user)
    assert held <= 16 * 500 + 320
    rec.close()
    assert mem.num_samples == 16 * 10_000
