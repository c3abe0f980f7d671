"""`earshot eval latency` on the bundled recordings, and the `earshot eval` command line.

The loop runs with the real components (Silero VAD, pocketsphinx, espeak-ng) on a
`SimulatedClock` (compute charged); the LLM is the scripted one, which is simulated by design.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from matplotlib.image import imread

from earshot.evals import cli as eval_cli
from earshot.evals.harness import Trial
from earshot.evals.latency import (
    STAGES,
    LatencyOptions,
    LatencyRun,
    bundled_data_dir,
    load_manifest,
    reply_waits_ms,
    run_latency,
    select_utterances,
    stage_deltas,
)
from earshot.evals.latency_plan import LatencyTrial
from earshot.evals.latency_trial import run_trial
from earshot.metrics.turn import MARKS, TERMS, TurnRecord

N = 3
SEED = 22
"""Seed 22 draws three short single-phrase LJ Speech clips (6.3 s of speech), keeping the run
fast; `test_same_seed_same_selection` checks the draw itself."""


@pytest.fixture(scope="module")
def latency_run(tmp_path_factory: pytest.TempPathFactory) -> LatencyRun:
    out = tmp_path_factory.mktemp("eval-latency")
    return run_latency(LatencyOptions(n=N, seed=SEED, out_dir=out, quiet=True))


def test_outputs_written(latency_run: LatencyRun) -> None:
    out = latency_run.options.out_dir
    doc = json.loads((out / "latency.json").read_text(encoding="utf-8"))
    assert doc["eval"] == "latency" and doc["interrupted"] is False
    assert doc["counts"]["utterances"] == N
    assert set(doc["stages"]) == {s.name for s in STAGES}
    assert doc["ttfat"]["n"] == doc["counts"]["complete_turns"] >= N
    assert doc["ttfat"]["p50_ms"] <= doc["ttfat"]["p95_ms"]
    assert doc["counts"]["processed_input_ms"] == doc["counts"]["input_ms"] > 0
    assert "SIMULATED" in doc["components"]["llm"]
    assert "real" in doc["components"]["stt"] and "simulated" in doc["components"]["clock"]
    image = imread(out / "latency.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    table = (out / "latency.txt").read_text(encoding="utf-8")
    for s in STAGES:
        assert s.name in table
    assert "TTFAT" in table and "SIMULATED" in table
    lines = (out / "turns.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(latency_run.turns)


def test_every_utterance_measured(latency_run: LatencyRun) -> None:
    complete = latency_run.complete_turns
    assert len(complete) >= N
    assert all(t.complete for t in latency_run.turns)
    answered = {t.extra["utterance"] for t in complete}
    assert answered == {u.name for u in latency_run.utterances}
    # Speech ends inside the utterance it is attributed to, never before it started.
    for t in complete:
        i = [u.name for u in latency_run.utterances].index(t.extra["utterance"])
        start_ms = latency_run.placed[i].start_sample / 16.0
        end_ms = latency_run.placed[i].end_sample / 16.0
        assert start_ms < t.marks_ms["speech_end"] <= end_ms + 100.0


def test_stage_deltas_non_negative_and_sum_to_ttfat(latency_run: LatencyRun) -> None:
    for t in latency_run.complete_turns:
        deltas = stage_deltas(t)
        terms = t.terms_ms
        assert deltas is not None and terms is not None and t.ttfat_ms is not None
        assert all(v >= 0.0 for v in deltas.values()), deltas
        assert all(terms[name] >= 0.0 for name in TERMS), terms
        assert math.fsum(terms.values()) == pytest.approx(t.ttfat_ms, abs=1.0)
        assert math.fsum(deltas.values()) == pytest.approx(t.ttfat_ms, abs=1.0)
        # Real components take real time, so the charged STT and TTS stages are not zero.
        assert deltas["stt_finalization"] > 0.0 and deltas["tts_first_audio"] > 0.0
        # The scripted LLM's first token comes after its profile's TTFT (gpt-4o-mini: 160 ms).
        assert deltas["llm_ttft"] >= 160.0 - 1e-6


def test_stages_chain_the_marks() -> None:
    assert STAGES[0].start_mark == MARKS[0] and STAGES[-1].end_mark == "playout_start"
    for before, after in itertools.pairwise(STAGES):
        assert before.end_mark == after.start_mark


def test_reply_waits() -> None:
    def turn(n: int, queued_ms: float, start_ms: float, played: int | None) -> TurnRecord:
        t = TurnRecord(n, {"playout_queued": queued_ms, "playout_start": start_ms})
        if played is not None:
            t.extra["played_samples"] = played
        return t

    turns = [
        turn(1, 1000.0, 1040.0, 16_000),  # plays 1040–2040 ms
        turn(2, 1500.0, 2040.0, 1_600),  # queued behind turn 1 for 540 ms, plays 2040–2140
        turn(3, 3000.0, 3040.0, None),  # nothing playing: its 40 ms is the jitter hold
        turn(4, 2100.0, 2140.0, 0),  # waits 40 ms for turn 2's end (not the jitter hold)
    ]
    assert reply_waits_ms(turns) == {2: 540.0, 4: 40.0}
    assert reply_waits_ms([TurnRecord(1)]) == {}


def test_json_percentiles_match_turns(latency_run: LatencyRun) -> None:
    doc = json.loads((latency_run.options.out_dir / "latency.json").read_text(encoding="utf-8"))
    ttfats = sorted(t["ttfat_ms"] for t in doc["turns"] if t["ttfat_ms"] is not None)
    assert doc["ttfat"]["max_ms"] == pytest.approx(ttfats[-1], abs=1e-3)
    n = len(ttfats)
    rank = (n - 1) * 0.5
    lo, hi = ttfats[math.floor(rank)], ttfats[math.ceil(rank)]
    assert doc["ttfat"]["p50_ms"] == pytest.approx(lo + (hi - lo) * (rank % 1), abs=2e-3)


def test_same_seed_same_selection(latency_run: LatencyRun) -> None:
    pool = load_manifest(bundled_data_dir())
    assert all(u.language == "en" for u in pool) and len(pool) >= 5
    first = select_utterances(pool, 20, SEED)
    assert first == select_utterances(pool, 20, SEED)
    assert [u.name for u in first[:N]] == [u.name for u in latency_run.utterances]
    assert first != select_utterances(pool, 20, SEED + 1)
    # Cycling: every clip appears once per pass through the pool.
    one_pass = first[: len(pool)]
    assert sorted(u.name for u in one_pass) == sorted(u.name for u in pool)


def test_interrupted_run_keeps_partial_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from earshot.evals import latency

    def run_then_interrupt(opts: LatencyOptions, trial: Trial[LatencyTrial]) -> dict[str, Any]:
        if trial.index == 1:
            raise KeyboardInterrupt  # as if Ctrl-C arrived during the second utterance
        return run_trial(opts, trial)

    patched = dataclasses.replace(latency.EVALUATION, run_trial=run_then_interrupt)
    monkeypatch.setattr(latency, "EVALUATION", patched)
    run = run_latency(LatencyOptions(n=3, seed=SEED, out_dir=tmp_path, quiet=True))
    assert run.interrupted
    doc = json.loads((tmp_path / "latency.json").read_text(encoding="utf-8"))
    assert doc["interrupted"] is True
    assert doc["counts"]["utterances"] == 1 and doc["counts"]["planned"] == 2
    assert doc["counts"]["complete_turns"] >= 1
    assert doc["ttfat"]["n"] == doc["counts"]["complete_turns"]
    assert len((tmp_path / "latency.trials.jsonl").read_text().splitlines()) == 1
    turns = (tmp_path / "turns.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(turns) == doc["counts"]["turns"]
    assert (tmp_path / "latency.png").is_file() and (tmp_path / "latency.txt").is_file()
    assert "INTERRUPTED" in (tmp_path / "latency.txt").read_text(encoding="utf-8")


def test_bad_data_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no manifest\.jsonl"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(
        '{"path": "a.wav", "kind": "speech", "duration_s": 1, "transcript": "x", '
        '"language": "en"}\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"manifest.jsonl:1: .*a.wav does not exist"):
        load_manifest(tmp_path)
    with pytest.raises(ValueError, match="at least 1 utterance"):
        select_utterances(load_manifest(bundled_data_dir()), 0, 0)


# --------------------------------------------------------------------------- the CLI


def _eval_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    root = argparse.ArgumentParser(prog="earshot")
    sub = root.add_subparsers(dest="command")
    eval_parser = eval_cli.add_parser(sub)
    actions = [a for a in eval_parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return root, dict(actions[0].choices)


def test_eval_help_for_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    root, verbs = _eval_parser()
    assert "latency" in verbs
    for verb in ["", *verbs]:
        argv = ["eval", verb, "--help"] if verb else ["eval", "--help"]
        with pytest.raises(SystemExit) as exc:
            root.parse_args(argv)
        assert exc.value.code == 0
        assert "usage: earshot eval" in capsys.readouterr().out
    latency_help = verbs["latency"].format_help()
    for flag in (
        "--n",
        "--seed",
        "--data",
        "--out",
        "--vad",
        "--endpointer",
        "--eot-silence-ms",
        "--llm-profile",
        "--real-time",
    ):
        assert flag in latency_help


def test_eval_verbs_set_func(capsys: pytest.CaptureFixture[str]) -> None:
    from earshot.evals import latency

    root, _ = _eval_parser()
    args = root.parse_args(["eval", "latency", "--n", "2", "--seed", "3"])
    assert args.func is latency.run and args.n == 2 and args.seed == 3
    args = root.parse_args(["eval"])
    assert args.func(args) == 2
    assert "latency" in capsys.readouterr().out


def test_earshot_main_dispatches_eval(tmp_path: Path) -> None:
    from earshot.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "latency", "--help"])
    assert exc.value.code == 0
    # Bad input is reported with exit code 2, before any model loads or any folder is made.
    out = tmp_path / "out"
    code = main(["eval", "latency", "--data", str(tmp_path), "--out", str(out), "--quiet"])
    assert code == 2 and not out.exists()


def test_missing_verb_module_is_skipped_but_broken_one_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert eval_cli._import_verb("earshot.evals.no_such_verb_module") is None
    (tmp_path / "earshot_test_broken_verb.py").write_text(
        "import earshot_test_missing_dependency\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="earshot_test_missing_dependency"):
        eval_cli._import_verb("earshot_test_broken_verb")


def test_runs_on_a_folder_it_has_never_seen(tmp_path: Path) -> None:
    """A user's own folder: two recordings renamed and re-listed in a fresh manifest."""
    import shutil

    src = bundled_data_dir() / "speech"
    data = tmp_path / "mine"
    (data / "clips").mkdir(parents=True)
    lines = []
    for i, (name, text) in enumerate(
        [
            ("realtimestt_ljspeech_LJ001-0008.wav", "has never been surpassed."),
            ("realtimestt_ljspeech_LJ001-0002.wav", "in being comparatively modern."),
        ]
    ):
        shutil.copy(src / name, data / "clips" / f"caller{i}.wav")
        lines.append(
            json.dumps(
                {
                    "path": f"clips/caller{i}.wav",
                    "kind": "speech",
                    "duration_s": 2.0,
                    "transcript": text,
                    "language": "en",
                }
            )
        )
    (data / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run = run_latency(LatencyOptions(n=2, seed=1, data_dir=data, out_dir=out, quiet=True))
    doc = json.loads((out / "latency.json").read_text(encoding="utf-8"))
    assert doc["counts"]["utterances"] == 2 and doc["ttfat"]["n"] >= 2
    assert all(u.path.parent == data / "clips" for u in run.utterances)
    assert (out / "latency.png").is_file() and (out / "latency.txt").is_file()
