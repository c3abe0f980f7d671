"""A second stop ends the process at once; the first one's outputs stay whole.

Pure: `earshot.shutdown`'s hold on a hard stop while a temp file is being named (``os._exit``
replaced by an exception). Real: a child process on `run_stoppable`, real signals, real files,
each signal sent at a moment the child announces (no sleeps to guess the timing).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from robust_cli import earshot_env

from earshot import shutdown

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from earshot import outputs, shutdown

    out = Path(sys.argv[1])

    async def main():
        print("running", flush=True)
        await asyncio.sleep(60)

    def slow(tmp):
        tmp.write_text("half")
        print("writing", flush=True)
        time.sleep(60)

    with shutdown.sigterm_as_sigint():
        try:
            shutdown.run_stoppable(main())
        except KeyboardInterrupt:
            outputs.write_text(out / "first.txt", "whole")
            if sys.argv[2] == "written":
                shutdown.outputs_written()
                print("written", flush=True)
                time.sleep(1.0)
                print("summary printed", flush=True)
            else:
                outputs.atomic_write(out / "second.txt", slow)
    """
)


def _child(out: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=earshot_env(),
    )


def _wait_for(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    got = proc.stdout.readline().strip()
    assert got == line, f"the child said {got!r}, not {line!r} (exit status {proc.poll()})"


@pytest.mark.parametrize(("sig", "status", "how"), [
    (signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM"),
])  # fmt: skip
def test_a_second_stop_while_writing_exits_at_once_and_leaves_no_temp_file(
    tmp_path: Path, sig: signal.Signals, status: int, how: str
) -> None:
    proc = _child(tmp_path, "write")
    _wait_for(proc, "running")
    proc.send_signal(sig)
    _wait_for(proc, "writing")  # the first stop was handled: the partial outputs are going out
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)  # well before the write's 60 s sleep ends
    assert proc.returncode == status
    assert stderr == f"earshot: stopped by {how}\n"
    # The file written before the second stop is whole; the one in flight left nothing.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.txt"]
    assert (tmp_path / "first.txt").read_text() == "whole"


def test_once_the_outputs_are_written_a_second_stop_is_ignored(tmp_path: Path) -> None:
    proc = _child(tmp_path, "written")
    _wait_for(proc, "running")
    proc.send_signal(signal.SIGINT)
    _wait_for(proc, "written")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert stdout.strip() == "summary printed" and stderr == ""


@pytest.fixture
def stop_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A stopped run's state, with ``os._exit`` recorded and raised instead of exiting."""
    exits: list[int] = []

    def fake_exit(status: int) -> None:
        exits.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(shutdown.os, "_exit", fake_exit)
    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(shutdown, "_state", shutdown._StopState())
    yield exits
    signal.signal(signal.SIGINT, previous)


def test_a_hard_stop_while_a_temp_file_is_named_waits_for_its_name(
    tmp_path: Path, stop_state: list[int]
) -> None:
    tmp = tmp_path / ".out.txt.tmp"
    with pytest.raises(SystemExit), shutdown.temp_file_in_flight() as named:
        shutdown.hard_stop()  # as if the signal came inside mkstemp
        assert stop_state == []  # held: the file's name is not known yet
        tmp.write_text("x")
        named(tmp)
    assert stop_state == [130]
    assert not tmp.exists()


def test_a_hard_stop_outside_any_write_exits_at_once(stop_state: list[int]) -> None:
    with pytest.raises(SystemExit):
        shutdown.hard_stop()
    assert stop_state == [130]


def test_a_stopped_run_raises_keyboard_interrupt_even_if_main_absorbed_the_cancel(
    stop_state: list[int],
) -> None:
    seen: list[str] = []

    async def main() -> str:
        try:
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
        return "finished anyway"

    shutdown._state.owns_process = True  # as under the `earshot` command
    with pytest.raises(KeyboardInterrupt):
        shutdown.run_stoppable(main())
    assert seen == ["cancelled"]
    # The handler stays for the rest of the run: the next stop is a hard one.
    with pytest.raises(SystemExit):
        signal.raise_signal(signal.SIGINT)
    assert stop_state == [130]


def test_an_unstopped_run_returns_and_restores_the_handler(stop_state: list[int]) -> None:
    before = signal.getsignal(signal.SIGINT)

    async def main() -> int:
        await asyncio.sleep(0)
        return 7

    assert shutdown.run_stoppable(main()) == 7
    assert signal.getsignal(signal.SIGINT) is before
    assert stop_state == []


def test_as_a_library_a_stopped_run_hands_ctrl_c_back_and_the_next_run_starts_afresh(
    stop_state: list[int],
) -> None:
    before = signal.getsignal(signal.SIGINT)

    async def stopped() -> None:
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(10)

    async def fine() -> str:
        await asyncio.sleep(0)
        return "ran"

    with pytest.raises(KeyboardInterrupt):
        shutdown.run_stoppable(stopped())
    assert signal.getsignal(signal.SIGINT) is before  # a notebook keeps its own Ctrl-C
    assert shutdown.run_stoppable(fine()) == "ran"
    assert stop_state == []  # never ended the process


def test_as_a_library_a_second_ctrl_c_while_unwinding_raises_at_once(
    stop_state: list[int],
) -> None:
    async def slow_to_unwind() -> None:
        try:
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            signal.raise_signal(signal.SIGINT)  # the second, while the first unwinds
            await asyncio.sleep(10)

    with pytest.raises(KeyboardInterrupt):
        shutdown.run_stoppable(slow_to_unwind())
    assert stop_state == []
