"""The playout ledger: sent vs device-played counts per response (pure, synthetic timeline)."""

from __future__ import annotations

import numpy as np

from earshot.playout.jitter import JitterBuffer
from earshot.session.playout import PlayoutLedger
from earshot.transports.base import PlayoutReport


def _ledger(device: bool) -> PlayoutLedger:
    jb = JitterBuffer(jitter_ms=0.0)
    jb.open(1)
    jb.push(1, np.ones(480, dtype=np.int16), now_ms=0.0)
    jb.end(1)
    return PlayoutLedger(jb, 20, device_playout=device)


def test_a_file_like_transport_completes_a_response_when_its_last_sample_is_sent() -> None:
    ledger = _ledger(device=False)
    first = ledger.pull(320, 0.0)
    assert first.started == 1 and first.frame.response_samples == 0 and first.completed == ()
    second = ledger.pull(320, 20.0)
    assert second.frame.response_samples == 320 and second.frame.agent_samples == 160
    assert second.completed == ((1, 480),)
    assert ledger.played(1) == 480  # no report: what left the buffer
    assert ledger.playing_during(5.0) and ledger.playing_during(25.0)
    assert not ledger.playing_during(45.0)


def test_a_device_transport_completes_only_when_the_device_played_the_last_sample() -> None:
    ledger = _ledger(device=True)
    ledger.pull(320, 0.0)
    assert ledger.pull(320, 20.0).completed == ()
    assert ledger.played(1) == 0  # nothing reported yet: nothing heard
    assert ledger.report(PlayoutReport(1, 320, 80.0, first_sample_ms=60.0)) == (True, None)
    assert ledger.report(PlayoutReport(1, 100, 70.0)) == (False, None)  # older, late
    assert ledger.played(1) == 320 and ledger.last_sample_ms(1) == 80.0
    assert ledger.report(PlayoutReport(1, 480, 90.0)) == (True, (1, 480))


def test_clear_drops_queued_audio_and_keeps_the_reported_position() -> None:
    ledger = _ledger(device=True)
    ledger.pull(320, 0.0)
    ledger.report(PlayoutReport(1, 200, 50.0, first_sample_ms=37.5))
    assert ledger.clear(1) == 200
    assert ledger.pull(320, 20.0).frame.response_id is None  # nothing of it plays any more
