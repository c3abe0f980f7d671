"""The evaluation harness with a toy evaluation: pure, milliseconds, no models."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from earshot.evals.harness import (
    Evaluation,
    Report,
    RunResult,
    Trial,
    TrialResult,
    add_common_arguments,
    common_settings,
    run_cli,
    run_trials,
    trial_seed,
)
from earshot.evals.outputs import OutputPathError, TrialLog, check_out_dir, check_out_file


@dataclass(frozen=True)
class ToyOptions:
    n: int = 5
    seed: int = 0
    stop_at: int | None = None
    """Trial index that raises `stop_with` (to simulate Ctrl-C, SIGTERM or a bug)."""
    stop_with: str = "sigint"
    plan_fails_at: int | None = None
    """Trial index at which the plan itself raises (a bad manifest line deep in a corpus)."""


def toy_plan(opts: ToyOptions) -> Iterator[Trial[int]]:
    if opts.n < 1:
        raise ValueError("--n must be at least 1")
    for i in range(opts.n):
        if i == opts.plan_fails_at:
            raise ValueError(f"manifest.jsonl:{i + 1}: not valid JSON; fix or remove the line")
        trial_id = f"toy-{i:03d}"
        yield Trial(i, trial_id, trial_seed(opts.seed, trial_id), params=i * 10)


def toy_score(value: int, seed: int) -> TrialResult:
    """The pure scorer: a number from the trial's parameters and seed."""
    return {"value": value, "score": (value * 31 + seed) % 97}


def toy_trial(opts: ToyOptions, trial: Trial[int]) -> TrialResult:
    if trial.index == opts.stop_at:
        if opts.stop_with == "sigint":
            raise KeyboardInterrupt
        if opts.stop_with == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("the toy trial broke")
    return toy_score(trial.params, trial.seed)


def toy_report(opts: ToyOptions, run: RunResult) -> Report:
    scores = [r["score"] for r in run.results]
    doc: dict[str, Any] = {
        "eval": "toy",
        "interrupted": run.interrupted,
        "trials": [d.trial_id for d in run.done],
        "total": sum(scores),
    }
    return Report(
        doc=doc,
        lines=[f"toy: {len(scores)} trials, total {sum(scores)}"],
        exit_code=0 if scores else 1,
        message="no trial ran",
    )


TOY: Evaluation[ToyOptions, int] = Evaluation(
    name="toy",
    plan=toy_plan,
    run_trial=toy_trial,
    report=toy_report,
    describe=lambda r: f"score {r['score']}",
)


def _settings(out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, default_out=str(out))
    return parser.parse_args(["--out", str(out), "--quiet", *extra])


def test_trials_run_in_plan_order_with_stable_seeds() -> None:
    run = run_trials(TOY, ToyOptions(n=4, seed=7))
    assert [d.index for d in run.done] == [0, 1, 2, 3] and run.planned == 4
    assert not run.interrupted and not run.failure
    expected = [toy_score(i * 10, trial_seed(7, f"toy-{i:03d}")) for i in range(4)]
    assert run.results == expected
    # The seed depends on the run seed and the trial id only, not on the process.
    assert trial_seed(7, "toy-001") == trial_seed(7, "toy-001") != trial_seed(8, "toy-001")


def test_cli_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _settings(tmp_path / "out")
    assert run_cli(TOY, ToyOptions(n=3), common_settings(args)) == 0
    out = tmp_path / "out"
    doc = json.loads((out / "toy.json").read_text(encoding="utf-8"))
    assert doc["trials"] == ["toy-000", "toy-001", "toy-002"] and doc["interrupted"] is False
    assert "toy: 3 trials" in (out / "toy.txt").read_text(encoding="utf-8")
    lines = [json.loads(x) for x in (out / "toy.trials.jsonl").read_text().splitlines()]
    assert [x["trial"] for x in lines] == doc["trials"]
    assert sum(x["result"]["score"] for x in lines) == doc["total"]
    assert not (out / "toy.png").exists()  # this evaluation draws no chart
    assert "3 trial(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("stop_with", "code"), [("sigint", 130), ("sigterm", 143)])
def test_interrupted_run_keeps_the_trials_done(tmp_path: Path, stop_with: str, code: int) -> None:
    opts = ToyOptions(n=10, stop_at=6, stop_with=stop_with)
    assert run_cli(TOY, opts, common_settings(_settings(tmp_path))) == code
    doc = json.loads((tmp_path / "toy.json").read_text(encoding="utf-8"))
    assert doc["interrupted"] is True and len(doc["trials"]) == 6
    assert len((tmp_path / "toy.trials.jsonl").read_text().splitlines()) == 6
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_a_corpus_run_stopped_at_900_of_1000_keeps_900(tmp_path: Path) -> None:
    opts = ToyOptions(n=1000, stop_at=900)
    assert run_cli(TOY, opts, common_settings(_settings(tmp_path))) == 130
    doc = json.loads((tmp_path / "toy.json").read_text(encoding="utf-8"))
    assert len(doc["trials"]) == 900 and doc["trials"][-1] == "toy-899"
    lines = (tmp_path / "toy.trials.jsonl").read_text().splitlines()
    assert len(lines) == 900 and json.loads(lines[-1])["index"] == 899


def test_the_plan_is_streamed_not_loaded(tmp_path: Path) -> None:
    pulled: list[int] = []

    def lazy_plan(opts: ToyOptions) -> Iterator[Trial[int]]:
        for trial in toy_plan(opts):
            pulled.append(trial.index)
            yield trial

    def checking_trial(opts: ToyOptions, trial: Trial[int]) -> TrialResult:
        assert pulled[-1] == trial.index  # nothing pulled ahead of the trial that runs
        return toy_trial(opts, trial)

    streamed = Evaluation("toy", lazy_plan, checking_trial, toy_report)
    run = run_trials(streamed, ToyOptions(n=50))
    assert len(run.done) == 50 and not run.failure and run.total is None and run.planned == 50


def test_failing_trial_keeps_earlier_trials_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = ToyOptions(n=5, stop_at=3, stop_with="bug")
    assert run_cli(TOY, opts, common_settings(_settings(tmp_path))) == 1
    err = capsys.readouterr().err
    assert "trial toy-003 failed: RuntimeError: the toy trial broke" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert len(json.loads((tmp_path / "toy.json").read_text())["trials"]) == 3


def test_bad_plan_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(TOY, ToyOptions(n=0), common_settings(_settings(tmp_path))) == 2
    assert capsys.readouterr().err == "error: --n must be at least 1\n"


def test_a_plan_that_fails_deep_in_the_corpus_keeps_what_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = ToyOptions(n=10, plan_fails_at=4)
    assert run_cli(TOY, opts, common_settings(_settings(tmp_path))) == 1
    err = capsys.readouterr().err
    assert "the plan stopped after 4 trial(s): manifest.jsonl:5: not valid JSON" in err
    assert err.count("\n") == 1
    assert len(json.loads((tmp_path / "toy.json").read_text())["trials"]) == 4


def test_report_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opts = ToyOptions(n=3, stop_at=0)
    assert run_cli(TOY, opts, common_settings(_settings(tmp_path))) == 130  # interrupt wins
    opts = ToyOptions(n=3, stop_at=0, stop_with="bug")
    assert run_cli(TOY, opts, common_settings(_settings(tmp_path))) == 1


def test_unwritable_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def refuse(*_: object, **__: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # as in a read-only folder (we run as root)
    with pytest.raises(OutputPathError, match=r"--out .*sub: cannot write in this folder \(Perm"):
        check_out_dir(tmp_path / "sub")


def test_out_problems_are_one_line_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for bad in (a_file, a_file / "below"):
        opts = ToyOptions(n=3, stop_at=0, stop_with="bug")  # would fail if any trial ran
        assert run_cli(TOY, opts, common_settings(_settings(bad))) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out ") and err.count("\n") == 1, err
    with pytest.raises(OutputPathError, match="is a folder"):
        check_out_file(tmp_path, "--json")
    with pytest.raises(OutputPathError, match=r"--chart .*x.png: .*file.txt is a file"):
        check_out_file(a_file / "x.png", "--chart")
    assert not (tmp_path / "never").exists()
    check_out_dir(tmp_path / "never" / "made")  # checks only: the run makes it
    assert not (tmp_path / "never").exists()


def test_ray_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    args = _settings(tmp_path, "--ray")
    assert args.ray == "local"
    opts = ToyOptions(n=3, stop_at=0, stop_with="bug")
    assert run_cli(TOY, opts, common_settings(args)) == 2
    err = capsys.readouterr().err
    assert "earshot[ray]" in err and err.count("\n") == 1
    args = _settings(tmp_path, "--ray", "ray://10.0.0.1:10001", "--ray-cpus", "4")
    settings = common_settings(args)
    assert settings.ray is not None and settings.ray.address == "ray://10.0.0.1:10001"


def test_trial_log_never_keeps_a_torn_line(tmp_path: Path) -> None:
    disk_full = False

    def write(fd: int, data: bytes) -> int:
        if disk_full:
            return os.write(fd, data[:3]) if len(data) > 3 else 0  # 3 bytes, then no space
        return os.write(fd, data)

    log = TrialLog(tmp_path / "t.jsonl", _write=write)
    log.append({"a": 1})
    disk_full = True
    with pytest.raises(OSError, match="No space left"):
        log.append({"b": 2})
    disk_full = False
    log.append({"c": 3})
    log.close()
    assert (tmp_path / "t.jsonl").read_text().splitlines() == ['{"a": 1}', '{"c": 3}']
    with pytest.raises(ValueError):
        TrialLog(tmp_path / "u.jsonl").append({"x": float("nan")})
