"""Fakes for every stage of the loop, shipped for users' tests (and earshot's own).

* `EnergyVad`, `ScriptedVad` — VAD from frame energy or a script of voiced spans.
* `FakeStt` — scripted transcripts per turn, partials, pause hints recorded, failures.
* `FakeLlm` + `LlmScript` — per-turn replies with TTFT, token rate, failures, stalls.
* `FakeTts` — deterministic tone audio with exact word timings, injectable failures.
* `SyntheticCaller` — a caller source generating tone bursts on the fly (no memory per minute).
* `FakeNetworkTransport` — a client transport with fixed delays and device playout reports,
  that can vanish mid-call.

Run them on `earshot.clock.SimulatedClock(charge_compute=False)` and a whole call takes
milliseconds, with every mark an exact function of the script.
"""

from __future__ import annotations

from earshot.testing.fakes import EnergyVad, FakeLlm, FakeStt, FakeTts, LlmScript, ScriptedVad
from earshot.testing.transport import FakeNetworkTransport, SyntheticCaller

__all__ = [
    "EnergyVad",
    "FakeLlm",
    "FakeNetworkTransport",
    "FakeStt",
    "FakeTts",
    "LlmScript",
    "ScriptedVad",
    "SyntheticCaller",
]
