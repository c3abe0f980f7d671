"""Running the real ``earshot`` command in a subprocess, for the failure-handling tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def earshot_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else ""), "COLUMNS": "200"}


def earshot(
    *args: str | os.PathLike[str],
    timeout_s: float = 120.0,
    env_extra: dict[str, str] | None = None,
) -> Run:
    """Run ``python -m earshot ARGS`` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "earshot", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**earshot_env(), **(env_extra or {})},
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
