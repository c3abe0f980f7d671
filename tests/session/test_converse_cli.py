"""`earshot converse` end to end through its command line, on a real recording.

Real: every component but the LLM, which is the scripted (simulated) default or, in the
fallback test, the OpenAI-compatible client talking to a real local HTTP server that fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sse_server import ErrorReply, SseServer

from earshot.audio.io import write_wav_atomic
from earshot.cli import main
from earshot.evals.tracks import build_caller_track, load_clips


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory, speech_dir: Path) -> Path:
    clips = load_clips(
        [
            speech_dir / "realtimestt_ljspeech_LJ001-0013.wav",
            speech_dir / "realtimestt_ljspeech_LJ001-0002.wav",
        ]
    )
    track, _ = build_caller_track(clips, gap_ms=6000, lead_ms=500, tail_ms=6000)
    path = tmp_path_factory.mktemp("caller") / "caller_44k_stereo.wav"
    # Store it at 44.1 kHz stereo: converse must resample and downmix.
    t16 = track.astype(np.float32) / 32768
    import soxr

    t44 = soxr.resample(t16, 16000, 44100)
    sf.write(path, np.stack([t44, t44], axis=1), 44100, subtype="PCM_16")
    return path


def read_turns(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_converse_writes_every_output(caller_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = main(["converse", str(caller_wav), "--out", str(out), "--simulated-clock", "--quiet"])
    assert rc == 0
    turns = read_turns(out / "turns.jsonl")
    assert [t["turn"] for t in turns] == [1, 2]
    for t in turns:
        terms = t["terms_ms"]
        assert isinstance(terms, dict)
        assert abs(sum(terms.values()) - float(t["ttfat_ms"])) < 1.0  # type: ignore[arg-type]
        assert t["interrupted"] is False and t["user_text"] and t["agent_text"]
    audio, rate = sf.read(out / "conversation.wav", dtype="int16")
    assert rate == 16000 and audio.ndim == 2 and audio.shape[1] == 2
    assert audio[:, 0].any() and audio[:, 1].any()
    report = (out / "report.md").read_text()
    assert "SIMULATED" in report and "| 2 |" in report
    assert (out / "latency.png").stat().st_size > 10_000


def test_unreadable_and_empty_inputs_get_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["converse", str(tmp_path / "missing.wav"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    assert main(["converse", str(bad), "--out", str(tmp_path)]) == 2
    assert "cannot read it as audio" in capsys.readouterr().err
    empty = tmp_path / "empty.wav"
    write_wav_atomic(empty, np.zeros(0, dtype=np.int16), 16000)
    assert main(["converse", str(empty), "--out", str(tmp_path)]) == 2
    assert "no audio samples" in capsys.readouterr().err


def test_llm_failure_is_spoken_as_a_fallback_line(caller_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "fallback"
    with SseServer() as server:
        server.queue(
            ErrorReply(500, "model crashed"),
            ErrorReply(500, "model crashed"),
        )
        rc = main(
            [
                "converse", str(caller_wav), "--out", str(out), "--simulated-clock", "--quiet",
                "--llm", "openai", "--llm-base-url", server.base_url, "--llm-model", "m",
            ]
        )  # fmt: skip
        assert len(server.requests) == 2
    assert rc == 3  # the run finished, but every turn failed: not a success
    turns = read_turns(out / "turns.jsonl")
    assert len(turns) == 2
    for t in turns:
        assert t["agent_text"] == "Sorry, I'm having trouble answering right now."
        assert "500" in str(t["llm_error"])
        assert t["ttfat_ms"] is not None  # the fallback was played: the turn is complete,
        # but it is a failed turn, kept out of the statistics


def test_ctrl_c_keeps_the_turns_done_so_far(caller_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "earshot.cli", "converse", str(caller_wav), "--out", str(out),
         "--simulated-clock", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    log = out / "turns.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    turns = read_turns(log)
    assert len(turns) == 1 and turns[0]["ttfat_ms"] is not None
    assert (out / "conversation.wav").exists() and (out / "report.md").exists()
    assert "interrupted | True" in (out / "report.md").read_text()
