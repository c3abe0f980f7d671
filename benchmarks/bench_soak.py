"""Soak: memory of a long ``earshot converse`` run, sampled while it runs.

Run: ``python benchmarks/bench_soak.py [--minutes 20] [--every-s 10] [--simulated-clock]
[--json soak.json]``.

Builds a caller recording of ``--minutes`` minutes (16 kHz mono PCM16) from the bundled real
utterances (``data/speech``), 3 to 7 s of silence between them (a fixed seed), so the agent
answers a turn every few seconds for the whole run. Runs the real command,
``python -m earshot converse REC --out DIR --quiet``, in a subprocess — on the real clock by
default (the run takes as long as the recording), or ``--simulated-clock`` (idle waits skipped;
the same work, faster) — and reads the process's resident set size (``VmRSS`` in
``/proc/PID/status``) every ``--every-s`` seconds of wall time, and its peak (``VmHWM``) at the
end.

Reported, as ratios to the recording's own size at 16 kHz (``minutes × 60 × 16000 × 2``
bytes, the size the pipeline works at):

* ``growth`` — RSS at the last sample minus RSS at the first sample after the models loaded
  (the first sample at or after 10 % of the run), and that growth as a multiple of the
  recording size;
* ``slope`` — least-squares RSS slope over the second half of the run (MB per minute of
  audio): flat means no per-turn leak;
* ``peak`` — the peak RSS and its multiple of the recording size.

A flat, bounded soak needs streamed input and a bounded recording: a run that keeps the input,
the agent track and the microphone track in memory grows by about one recording size per
track, and writing ``conversation.wav`` (stereo) adds two more at the end — which is what the
ratios show until input streaming lands. Linux only (``/proc``). Benchmarks may read clocks
directly; the engine never does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot.cli import bundled_data
from earshot.outputs import write_json

SAMPLE_RATE_HZ = 16_000
_MB = 1024.0 * 1024.0


def build_recording(path: Path, minutes: float, seed: int = 0) -> int:
    """Write a ``minutes``-long caller recording of real utterances; returns its samples."""
    clips = []
    for wav in sorted(bundled_data("speech").glob("*.wav")):
        audio, rate = sf.read(wav, dtype="int16")
        if rate == SAMPLE_RATE_HZ and audio.ndim == 1:
            clips.append(audio)
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * SAMPLE_RATE_HZ)
    out = np.zeros(total, dtype=np.int16)
    pos = SAMPLE_RATE_HZ  # 1 s of lead silence
    i = 0
    while True:
        clip = clips[i % len(clips)]
        gap = int(rng.uniform(3.0, 7.0) * SAMPLE_RATE_HZ)
        if pos + len(clip) + gap > total:
            break
        out[pos : pos + len(clip)] = clip
        pos += len(clip) + gap
        i += 1
    sf.write(path, out, SAMPLE_RATE_HZ, subtype="PCM_16")
    return total


def _status_kb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def soak(
    recording: Path, out_dir: Path, every_s: float, simulated: bool
) -> tuple[list[tuple[float, float]], float | None, int, str]:
    """Run converse on ``recording``; returns ``([(t_s, rss_mb)], peak_mb, exit status, tail)``."""
    cmd = [sys.executable, "-m", "earshot", "converse", str(recording), "--out", str(out_dir)]
    cmd += ["--quiet"] + (["--simulated-clock"] if simulated else [])
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, float]] = []
    peak_kb: float | None = None
    next_s = 0.0
    while proc.poll() is None:
        now_s = time.monotonic() - started
        if now_s >= next_s:
            rss_kb = _status_kb(proc.pid, "VmRSS")
            hwm = _status_kb(proc.pid, "VmHWM")
            peak_kb = hwm if hwm is not None else peak_kb
            if rss_kb is not None:
                samples.append((now_s, rss_kb / 1024.0))
                print(f"  t={now_s:7.1f} s  RSS {rss_kb / 1024.0:8.1f} MB", flush=True)
            next_s += every_s
        time.sleep(min(0.2, every_s / 10))
    output = proc.stdout.read() if proc.stdout is not None else ""
    tail = "\n".join(output.strip().splitlines()[-3:])
    return samples, None if peak_kb is None else peak_kb / 1024.0, proc.returncode, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="recording length")
    parser.add_argument("--every-s", type=float, default=10.0, help="RSS sampling period")
    parser.add_argument("--simulated-clock", action="store_true", help="virtual time")
    parser.add_argument("--json", type=Path, help="write the samples and ratios here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="earshot-soak-") as tmp:
        recording = Path(tmp) / "caller.wav"
        num_samples = build_recording(recording, args.minutes)
        size_mb = num_samples * 2 / _MB
        clock = "simulated" if args.simulated_clock else "real-time"
        print(f"soak: {args.minutes:g} min recording ({size_mb:.1f} MB at 16 kHz), {clock} clock")
        samples, peak_mb, status, tail = soak(
            recording, Path(tmp) / "out", args.every_s, args.simulated_clock
        )
    if len(samples) < 3:
        print(f"too few samples ({len(samples)}); run longer or sample more often")
        return 1
    duration_s = samples[-1][0]
    warm = next((s for s in samples if s[0] >= 0.1 * duration_s), samples[0])
    growth_mb = samples[-1][1] - warm[1]
    half = [s for s in samples if s[0] >= duration_s / 2]
    t = np.array([s[0] for s in half])
    rss = np.array([s[1] for s in half])
    slope_mb_per_s = float(np.polyfit(t, rss, 1)[0]) if len(half) >= 2 else float("nan")
    audio_per_wall = args.minutes * 60.0 / duration_s if duration_s > 0 else float("nan")
    slope_mb_per_audio_min = slope_mb_per_s * 60.0 / audio_per_wall
    print(f"exit status {status}; last lines:\n{tail}")
    print(f"samples: {len(samples)} over {duration_s:.0f} s wall")
    print(
        f"RSS after warm-up {warm[1]:.1f} MB, at the end {samples[-1][1]:.1f} MB: growth "
        f"{growth_mb:+.1f} MB = {growth_mb / size_mb:.2f} x the recording"
    )
    print(f"slope over the second half: {slope_mb_per_audio_min:+.2f} MB per minute of audio")
    if peak_mb is not None:
        print(f"peak RSS {peak_mb:.1f} MB = {peak_mb / size_mb:.2f} x the recording")
    if args.json is not None:
        write_json(
            args.json,
            {
                "minutes": args.minutes,
                "clock": clock,
                "recording_mb": size_mb,
                "exit_status": status,
                "samples": [{"t_s": round(a, 1), "rss_mb": round(b, 1)} for a, b in samples],
                "warm_rss_mb": warm[1],
                "growth_mb": growth_mb,
                "growth_x_recording": growth_mb / size_mb,
                "slope_mb_per_audio_minute": slope_mb_per_audio_min,
                "peak_rss_mb": peak_mb,
                "peak_x_recording": None if peak_mb is None else peak_mb / size_mb,
            },
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
