"""`earshot budget --from`: measured turns.jsonl (written through the runtime's own TurnRecord)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from earshot.budget.cli import main
from earshot.budget.measured import TurnsFileError, load_turns
from earshot.budget.model import TERMS as BUDGET_TERMS
from earshot.metrics.turn import TERMS, TurnRecord


def turn(index: int, endpointing_ms: float, llm_ttft_ms: float) -> TurnRecord:
    """A complete turn whose marks give the stated endpointing and LLM TTFT."""
    speech_end = 10_000.0 * index
    marks = {"speech_end": speech_end}
    for name, step_ms in (
        ("end_of_turn", endpointing_ms),
        ("stt_final", 40.0),
        ("llm_request", 2.0),
        ("llm_first_token", llm_ttft_ms),
        ("first_sentence", 90.0),
        ("tts_first_audio", 60.0),
        ("playout_queued", 1.0),
        ("playout_start", 20.0),
    ):
        speech_end += step_ms
        marks[name] = speech_end
    return TurnRecord(turn=index, marks_ms=marks, network_in_ms=5.0, network_out_ms=7.0)


def write_run(directory: Path, records: list[TurnRecord]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "turns.jsonl"
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return path


LLM_TTFTS = [180.0, 220.0, 250.0, 300.0, 350.0, 420.0, 500.0, 650.0, 900.0, 1500.0]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    records = [turn(i + 1, 500.0 + 3 * i, ttft) for i, ttft in enumerate(LLM_TTFTS)]
    records.append(TurnRecord(turn=11, marks_ms={"speech_end": 1.0}, interrupted=True))
    write_run(tmp_path / "run", records)
    return tmp_path / "run"


def test_the_budget_vocabulary_starts_with_the_runtime_terms() -> None:
    assert tuple(BUDGET_TERMS)[: len(TERMS)] == TERMS


def test_load_turns_maps_terms_and_skips_incomplete(run_dir: Path) -> None:
    budget = load_turns([run_dir])
    measured = budget.measured
    assert budget.form == "measured" and measured is not None
    assert measured.num_turns == 10 and measured.skipped == 1
    assert budget.term_names == TERMS
    column = {t: measured.rows_ms[:, i] for i, t in enumerate(budget.term_names)}
    assert column["endpointing"].tolist() == [500.0 + 3 * i for i in range(10)]
    assert column["llm_ttft"].tolist() == LLM_TTFTS
    assert column["network_in"].tolist() == [5.0] * 10
    assert column["engine_overhead"].tolist() == [3.0] * 10  # 2 ms request + 1 ms queueing
    assert budget.sum_mismatches() == []
    # A measured run is the same kind of object as a preset: terms with their observed range.
    by_name = {t.name: t for t in budget.terms}
    assert (by_name["llm_ttft"].low_ms, by_name["llm_ttft"].high_ms) == (180.0, 1500.0)


def test_several_runs_and_files(run_dir: Path, tmp_path: Path) -> None:
    other = write_run(tmp_path / "other", [turn(1, 700.0, 200.0)])
    measured = load_turns([run_dir, other]).measured
    assert measured is not None
    assert measured.num_turns == 11 and len(measured.sources) == 2


def test_turns_that_do_not_add_up_are_reported(tmp_path: Path) -> None:
    record = turn(1, 500.0, 300.0).to_json()
    record["ttfat_ms"] += 12.5
    (tmp_path / "turns.jsonl").write_text(json.dumps(record) + "\n")
    assert load_turns([tmp_path]).sum_mismatches() == [0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "not JSON"),
        ('{"turn": 1, "ttfat_ms": null, "terms_ms": null}\n', "no complete turn"),
        ('{"turn": 1, "ttfat_ms": 5, "terms_ms": {"endpointing": "x"}}\n', "network_in is None"),
    ],
)
def test_bad_turns_files(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "turns.jsonl").write_text(content)
    with pytest.raises(TurnsFileError, match=message):
        load_turns([tmp_path])


def test_missing_run_directory(tmp_path: Path) -> None:
    with pytest.raises(TurnsFileError, match=r"give a turns\.jsonl or the run directory"):
        load_turns([tmp_path / "nowhere"])


def test_cli_from_projects_levers_onto_measured_turns(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "out" / "what-if.png"
    argv = ["budget", "--from", str(run_dir / "turns.jsonl"), "--samples", "20000"]
    argv += ["--lever", "vad_silence=300,from=500", "--lever", "hedge=2"]
    assert main([*argv, "--json", "-", "--chart", str(chart)]) == 0
    result = json.loads(capsys.readouterr().out)["simulation"]
    assert result["turns"] == 10 and result["skipped_incomplete"] == 1
    assert result["turns_not_adding_up"] == []

    measured = load_turns([run_dir]).measured
    assert measured is not None
    ttfat = measured.ttfat_ms
    se = ttfat.std() / math.sqrt(20_000)
    assert abs(result["baseline"]["ttfat_mean_ms"] - ttfat.mean()) < 4 * se

    vad_step, hedge_step = result["steps"]
    # A 500 → 300 ms silence threshold moves every turn's end-of-turn wait by exactly −200 ms.
    assert vad_step["mean_ms"]["endpointing"] == pytest.approx(
        result["baseline"]["mean_ms"]["endpointing"] - 200
    )
    assert vad_step["ttfat_mean_ms"] == pytest.approx(result["baseline"]["ttfat_mean_ms"] - 200)
    # Hedging two requests over the measured TTFTs: the first of two iid draws.
    ttfts = np.array(LLM_TTFTS)
    expected_min_mean = np.mean(np.minimum.outer(ttfts, ttfts))
    assert hedge_step["mean_ms"]["llm_ttft"] == pytest.approx(expected_min_mean, rel=0.03)
    drop = {
        p: vad_step["ttfat_percentiles_ms"][p] - hedge_step["ttfat_percentiles_ms"][p]
        for p in ("p50", "p95")
    }
    assert drop["p95"] > 2 * drop["p50"]  # the tail gains most

    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in chart.parent.iterdir()] == ["what-if.png"]  # no temp file left


def test_cli_from_is_seeded(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["budget", "--from", str(run_dir), "--samples", "2000", "--json", "-"]
    outputs = []
    for seed in ("3", "3", "4"):
        assert main([*argv, "--seed", seed, "--lever", "hedge=2"]) == 0
        outputs.append(json.loads(capsys.readouterr().out)["simulation"]["steps"])
    assert outputs[0] == outputs[1] != outputs[2]
