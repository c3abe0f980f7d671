"""Per-call memory after a long call vs a short one, on the shipped fakes.

Runs a call of ``--short-min`` and one of ``--long-min`` minutes (a turn every 20 s, tone
caller, `earshot.testing` fakes for every stage, simulated clock) through the file transport
with the recording streamed to disk, and reports the peak Python heap each call held
(``tracemalloc``) and their ratio. Flat memory means a ratio near 1; keeping every frame
(what the session did before it was built around a transport) would grow with the call:
the last column gives the size of the two 16 kHz int16 tracks such a design would keep.

    python benchmarks/bench_session_memory.py [--short-min 1] [--long-min 10]
"""

from __future__ import annotations

import argparse
import tempfile
import tracemalloc
from pathlib import Path

from earshot.clock import SimulatedClock
from earshot.session.config import SessionConfig
from earshot.session.session import Session
from earshot.testing import EnergyVad, FakeLlm, FakeStt, FakeTts, SyntheticCaller
from earshot.transports.file import FileTransport, WavRecorder
from earshot.turns.endpointer import FixedEndpointer


def peak_bytes(minutes: float, out_dir: Path) -> tuple[int, int]:
    """Peak traced heap (bytes) of one call of ``minutes`` and the number of turns."""
    duration_ms = minutes * 60_000.0
    spans = [(t + 1000.0, t + 2500.0) for t in range(0, int(duration_ms) - 10_000, 20_000)]
    clock = SimulatedClock(charge_compute=False)
    tracemalloc.start()
    try:
        session = Session(
            SessionConfig(),
            clock,
            EnergyVad(),
            FakeStt(),
            FakeLlm(clock),
            FakeTts(),
            FixedEndpointer(500.0),
        )
        recorder = WavRecorder(out_dir / f"conversation-{minutes:g}.wav", None)
        transport = FileTransport(
            SyntheticCaller(spans, duration_ms), clock, recorder=recorder, max_tail_ms=10_000.0
        )
        state = clock.run(lambda: session.run(transport))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, len(state.turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short-min", type=float, default=1.0)
    parser.add_argument("--long-min", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        short, short_turns = peak_bytes(args.short_min, Path(tmp))
        long, long_turns = peak_bytes(args.long_min, Path(tmp))
    tracks_mb = args.long_min * 60 * 16_000 * 2 * 2 / 1e6
    print("| call | turns | peak heap MB | vs short | two tracks kept in memory would be MB |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {args.short_min:g} min | {short_turns} | {short / 1e6:.2f} | 1.00 | — |")
    print(
        f"| {args.long_min:g} min | {long_turns} | {long / 1e6:.2f} | {long / short:.2f} | "
        f"{tracks_mb:.1f} |"
    )


if __name__ == "__main__":
    main()
