"""``earshot call`` against ``earshot serve`` (two real processes on 127.0.0.1, the shipped
fakes on the server) with simulated network conditions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_server_calls import tone_caller

FRAME_MS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    e = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    e["PYTHONPATH"] = src + os.pathsep + e.get("PYTHONPATH", "")
    return e


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    out = tmp_path_factory.mktemp("calls")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "earshot.cli",
            "serve",
            "--stack",
            "fake",
            "--port",
            str(port),
            "--out",
            str(out),
        ],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("earshot serve did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def call(url: str, tmp: Path, *net: str) -> tuple[list[dict], np.ndarray]:
    caller = tmp / "caller.wav"
    sf.write(caller, tone_caller([(0.4, 1.6), (5.0, 6.0)], 9.0), 16_000, subtype="PCM_16")
    out = tmp / "out"
    done = subprocess.run(
        [sys.executable, "-m", "earshot.cli", "call", url, str(caller), "--out", str(out), *net],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("conversation.wav", "turns.jsonl", "report.md", "latency.png"):
        assert (out / name).exists(), name
    turns = [json.loads(x) for x in (out / "turns.jsonl").read_text().splitlines()]
    stereo, sr = sf.read(out / "conversation.wav", dtype="int16")
    assert sr == 16_000
    return turns, stereo


def silences_ms(stereo: np.ndarray) -> list[float]:
    """For each caller utterance in the caller's own recording: the silence from its last
    sample to the first agent sample after it."""
    user, agent = np.abs(stereo[:, 0]) > 0, np.abs(stereo[:, 1]) > 0
    voiced = np.flatnonzero(user)
    ends = [
        voiced[i]
        for i in range(len(voiced))
        if i + 1 == len(voiced) or voiced[i + 1] - voiced[i] > 1600
    ]
    out = []
    for e in ends:
        after = np.flatnonzero(agent[e:])
        if after.size:
            out.append(after[0] / 16.0)
    return out


def test_forty_ms_each_way(serve: str, tmp_path: Path) -> None:
    turns, stereo = call(serve, tmp_path, "--net-delay-ms", "40")
    assert len(turns) == 2
    for t, silence in zip(turns, silences_ms(stereo), strict=True):
        bound = t["sync_error_ms"]
        assert 40.0 <= bound < 100.0  # RTT/2 of an 80 ms round trip, plus this machine
        assert abs(t["terms_ms"]["network_in"] - 40.0) <= bound
        assert abs(t["terms_ms"]["network_out"] - 40.0) <= bound
        assert sum(t["terms_ms"].values()) == pytest.approx(t["ttfat_ms"], abs=0.01)
        # The TTFAT the server measured is the silence the caller lived through.
        assert abs(t["ttfat_ms"] - silence) <= FRAME_MS


def test_jitter_and_ten_percent_loss(serve: str, tmp_path: Path) -> None:
    turns, _stereo = call(
        serve,
        tmp_path,
        "--net-delay-ms",
        "30",
        "--net-jitter-ms",
        "20",
        "--net-loss",
        "0.1",
        "--seed",
        "3",
    )
    assert turns, "no turn survived 10 % loss"
    for t in turns:
        if t["ttfat_ms"] is None:
            continue
        bound = t["sync_error_ms"]
        # one-way delay is 30..50 ms; the bound is what clock sync can promise
        assert 30.0 - bound <= t["terms_ms"]["network_in"] <= 50.0 + bound
        assert 30.0 - bound <= t["terms_ms"]["network_out"] <= 50.0 + bound
        assert sum(t["terms_ms"].values()) == pytest.approx(t["ttfat_ms"], abs=0.01)
