"""Stopping earshot: SIGTERM like Ctrl-C, no traceback ever, a closed pipe exits quietly.

Real: `earshot` as a subprocess, real signals, real pipes, a real recording.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robust_cli import earshot_env


def _start(*args: str | Path, stderr: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "earshot", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=earshot_env(),
    )


def _wait_for_turns(proc: subprocess.Popen[bytes], log: Path, n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= n:
            return
        time.sleep(0.02)
    raise AssertionError("the run ended (or stalled) before it could be stopped")


@pytest.mark.parametrize(("sig", "status", "how"), [
    (signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C"),
])  # fmt: skip
def test_a_stopped_run_keeps_its_report_and_recording(
    long_wav: Path, tmp_path: Path, sig: signal.Signals, status: int, how: str
) -> None:
    out = tmp_path / "run"
    proc = _start("converse", long_wav, "--out", out, "--simulated-clock", "--quiet")
    _wait_for_turns(proc, out / "turns.jsonl", 1)
    proc.send_signal(sig)
    stdout, stderr = (s.decode() for s in proc.communicate(timeout=120))
    assert proc.returncode == status
    assert stdout.strip().splitlines()[-1] == (
        f"stopped by {how}: the outputs hold the turns done so far"
    )
    # No "Task exception was never retrieved", no "Executor shutdown", no traceback.
    assert stderr == ""
    manifest = json.loads((out / "earshot-run.json").read_text())
    assert manifest["status"] == "interrupted"
    assert {"conversation.wav", "turns.jsonl", "report.md"} <= set(manifest["files"])
    turns = (out / "turns.jsonl").read_text().splitlines()
    assert 1 <= len(turns) < 9
    report = (out / "report.md").read_text()
    assert "| interrupted | True |" in report
    assert f"| {len(turns)} |" in report


def test_ctrl_c_while_importing_prints_one_line(tmp_path: Path) -> None:
    # -X importtime reports each module as it is imported: stop the run as earshot's own
    # modules load, i.e. during start-up, before any handler of the command is in place.
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "earshot", "converse", "--out", tmp_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=earshot_env(),
    )
    assert proc.stderr is not None
    for raw in proc.stderr:
        if re.search(rb"\|\s+earshot\.", raw):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read().decode()
    proc.wait(timeout=60)
    messages = [line for line in rest.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 130
    assert "Traceback" not in rest
    assert len(messages) == 1 and messages[0].startswith("earshot: stopped")


def test_a_closed_pipe_exits_quietly() -> None:
    proc = _start("budget", "audit", "--json", "-")
    assert proc.stdout is not None
    proc.stdout.close()  # like `| head` having exited
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert stderr.decode() == ""


def test_a_second_ctrl_c_stops_at_once_with_one_line(long_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start("converse", long_wav, "--out", out, "--simulated-clock", "--quiet")
    _wait_for_turns(proc, out / "turns.jsonl", 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = (s.decode() for s in proc.communicate(timeout=120))
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "never retrieved" not in stderr
    # Either the second one came while the first was being handled (one line on stderr), or
    # after the outputs were written (the usual last line): never both, never more.
    lines = stderr.strip().splitlines()
    assert lines == ["earshot: stopped by Ctrl-C"] or (
        lines == []
        and stdout.strip().endswith("stopped by Ctrl-C: the outputs hold the turns done so far")
    )
    status = json.loads((out / "earshot-run.json").read_text())["status"]
    assert status in ("running", "interrupted")  # "running": stopped while writing, says so
