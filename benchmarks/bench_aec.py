"""Cost of the echo stages per frame, as a fraction of real time.

Runs the bundled JFK recording (11 s, 16 kHz) as the agent's output through the default
`EchoPath`, then WebRTC AEC3 (`EchoCanceller`), frame by frame, and reports for each stage the
processing time per frame divided by the frame's duration (0.01 = 1 % of one core's real time).
Timing is wall time from `SystemClock` on one thread, the best of ``--repeats`` runs.

    python benchmarks/bench_aec.py [--repeats 5]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import earshot
from earshot.audio.frames import Pcm16
from earshot.audio.io import read_audio
from earshot.clock import SystemClock
from earshot.echo.aec import EchoCanceller, NullEchoCanceller
from earshot.echo.path import EchoPath

SAMPLE_RATE_HZ = 16_000


def _best_ms(run: Callable[[], object], repeats: int, clock: SystemClock) -> float:
    best = float("inf")
    for _ in range(repeats):
        start_ms = clock.now_ms()
        run()
        best = min(best, clock.now_ms() - start_ms)
    return best


def _cancel_all(
    make: Callable[[], EchoCanceller | NullEchoCanceller],
    mic: Pcm16,
    far: Pcm16,
    frame_samples: int,
) -> None:
    canceller = make()
    for i in range(0, len(mic), frame_samples):
        canceller.process(mic[i : i + frame_samples], far[i : i + frame_samples])


def _echo_all(far: Pcm16, frame_samples: int) -> None:
    path = EchoPath()
    for i in range(0, len(far), frame_samples):
        path.process(far[i : i + frame_samples])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    far = read_audio(Path(earshot.__file__).parent / "data" / "speech" / "whisper_jfk.wav")
    far = far[: len(far) // 640 * 640]
    mic = EchoPath().process(far)
    audio_ms = len(far) * 1000.0 / SAMPLE_RATE_HZ
    clock = SystemClock()

    print(f"{'stage':<28}{'frame':>8}{'ms/frame':>12}{'x real time':>14}")
    for frame_ms in (10, 20, 40):
        frame_samples = SAMPLE_RATE_HZ * frame_ms // 1000
        num_frames = len(far) // frame_samples
        stages: list[tuple[str, Callable[[], object]]] = [
            ("EchoPath (simulated room)", partial(_echo_all, far, frame_samples)),
            ("EchoCanceller (AEC3)", partial(_cancel_all, EchoCanceller, mic, far, frame_samples)),
            (
                "NullEchoCanceller",
                partial(_cancel_all, NullEchoCanceller, mic, far, frame_samples),
            ),
        ]
        for name, run in stages:
            total_ms = _best_ms(run, args.repeats, clock)
            print(
                f"{name:<28}{frame_ms:>6}ms{total_ms / num_frames:>12.4f}"
                f"{total_ms / audio_ms:>14.4f}"
            )
    print(f"({audio_ms / 1000:.1f} s of audio, best of {args.repeats})")


if __name__ == "__main__":
    main()
