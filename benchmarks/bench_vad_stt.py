"""Benchmark the embedded VAD and STT backends: CPU cost per frame and real-time factors.

Run: ``python benchmarks/bench_vad_stt.py [--repeats 3]``

Input: every bundled speech recording (``earshot/data/speech``), each followed by 0.5 s of digital
silence, fed as a live stream would be (one frame at a time). Reported:

* VAD, per backend and frame size: mean / p99 CPU time per ``speech_probability`` call, in µs and
  as a ratio to the frame duration (the share of one core the VAD needs to keep up; 0.01 = 1 %).
  Silero scores 32 ms windows, so with 10 ms frames most calls only buffer and the p99 is the
  call that runs the model.
* PocketSphinx, streaming 20 ms frames: CPU real-time factor of ``push_audio`` (CPU time / audio
  time), p99 of one ``push_audio`` call over the frame duration, and the wall time of
  ``finish()`` (its contribution to the STT-finalisation term of TTFAT), plus the decoder load
  time and the whole-buffer ``transcribe`` real-time factor.

CPU times come from ``time.process_time_ns`` (all threads of this process), wall times from
``time.perf_counter_ns``; the library code itself never reads a clock.
"""

from __future__ import annotations

import argparse
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.audio.io import read_audio
from earshot.stt.pocketsphinx import PocketsphinxRecognizer
from earshot.vad import VAD_NAMES, make_vad

DATA = Path(str(files("earshot") / "data"))
GAP_SAMPLES = SAMPLE_RATE_HZ // 2


def load_recordings() -> list[Pcm16]:
    gap = np.zeros(GAP_SAMPLES, dtype=np.int16)
    return [
        np.concatenate((read_audio(path), gap)) for path in sorted((DATA / "speech").glob("*.wav"))
    ]


def cpu_ns_per_call(vad_name: str, audio: Pcm16, frame_ms: int) -> npt.NDArray[np.int64]:
    """CPU time (ns) of each ``speech_probability`` call over ``audio`` cut into frames."""
    vad = make_vad(vad_name)
    n = SAMPLE_RATE_HZ * frame_ms // 1000
    frames = [audio[i : i + n] for i in range(0, audio.size - n + 1, n)]
    out = np.empty(len(frames), dtype=np.int64)
    for k, frame in enumerate(frames):
        started = time.process_time_ns()
        vad.speech_probability(frame)
        out[k] = time.process_time_ns() - started
    return out


def bench_vad(audio: Pcm16, repeats: int) -> None:
    print(f"VAD: {audio.size / SAMPLE_RATE_HZ:.1f} s of audio, {repeats} passes")
    print(
        f"{'backend':<8} {'frame_ms':>8} {'mean_us':>9} {'p99_us':>9} {'mean/frame':>11} "
        f"{'p99/frame':>10}"
    )
    for name in VAD_NAMES:
        for frame_ms in (10, 20, 40):
            ns = np.concatenate([cpu_ns_per_call(name, audio, frame_ms) for _ in range(repeats)])
            frame_ns = frame_ms * 1e6
            mean, p99 = float(ns.mean()), float(np.percentile(ns, 99))
            print(
                f"{name:<8} {frame_ms:>8} {mean / 1e3:>9.1f} {p99 / 1e3:>9.1f} "
                f"{mean / frame_ns:>11.4f} {p99 / frame_ns:>10.4f}"
            )


def bench_stt(recordings: list[Pcm16], repeats: int, second_pass: bool) -> None:
    started = time.perf_counter_ns()
    rec = PocketsphinxRecognizer(second_pass=second_pass)
    rec.load()
    load_ms = (time.perf_counter_ns() - started) / 1e6
    n = SAMPLE_RATE_HZ * 20 // 1000
    push_ns: list[int] = []
    finish_ms: list[float] = []
    audio_s = 0.0
    transcribe_cpu_s = 0.0
    for _ in range(repeats):
        for pcm in recordings:
            audio_s += pcm.size / SAMPLE_RATE_HZ
            rec.start()
            for i in range(0, pcm.size, n):
                t0 = time.process_time_ns()
                rec.push_audio(pcm[i : i + n])
                push_ns.append(time.process_time_ns() - t0)
            t0 = time.perf_counter_ns()
            rec.finish()
            finish_ms.append((time.perf_counter_ns() - t0) / 1e6)
            t0 = time.process_time_ns()
            rec.transcribe(pcm)
            transcribe_cpu_s += (time.process_time_ns() - t0) / 1e9
    push = np.array(push_ns, dtype=np.float64)
    print(
        f"\nPocketSphinx, second_pass={second_pass}: {len(recordings)} recordings x {repeats}, "
        f"{audio_s:.1f} s of audio"
    )
    print(f"  decoder load (wall)          {load_ms:8.1f} ms")
    print(f"  streaming RTF (CPU / audio)  {push.sum() / 1e9 / audio_s:8.3f}")
    print(f"  push_audio p99 / 20 ms frame {np.percentile(push, 99) / 20e6:8.3f}")
    print(f"  finish() wall median / max   {np.median(finish_ms):8.1f} / {max(finish_ms):.1f} ms")
    print(f"  transcribe RTF (CPU / audio) {transcribe_cpu_s / audio_s:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recordings = load_recordings()
    bench_vad(np.concatenate(recordings), args.repeats)
    for second_pass in (True, False):
        bench_stt(recordings, max(1, args.repeats // 3), second_pass)


if __name__ == "__main__":
    main()
