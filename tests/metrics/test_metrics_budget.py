"""Budget lines, presets, the per-turn check and budget-file validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from earshot.metrics.budget import (
    DEFAULT_BUDGET,
    PIPELINE_1_5_S,
    PIPELINE_2_0_S,
    TOTAL_LINE,
    BudgetError,
    BudgetLine,
    TermBudget,
    budget_from_arg,
    budget_from_dict,
    count_overruns,
    load_budget,
)
from earshot.metrics.turn import MARKS, TERMS, TurnRecord


def make_turn(
    turn: int, gaps_ms: tuple[float, ...], network_in_ms: float = 0.0, network_out_ms: float = 0.0
) -> TurnRecord:
    marks = {MARKS[0]: 5000.0}
    for name, gap in zip(MARKS[1:], gaps_ms, strict=True):
        marks[name] = marks[MARKS[len(marks) - 1]] + gap
    return TurnRecord(turn, marks, network_in_ms=network_in_ms, network_out_ms=network_out_ms)


def test_default_is_the_1_5_s_pipeline_table() -> None:
    assert DEFAULT_BUDGET is PIPELINE_1_5_S
    got = {line.name: (line.terms, line.budget_ms) for line in PIPELINE_1_5_S.lines}
    assert got == {
        "VAD silence threshold": (("endpointing",), 200.0),
        "STT latency (streaming finalization)": (("stt_finalization",), 300.0),
        "LLM inference (TTFT)": (("llm_ttft",), 600.0),
        "TTS synthesis (first audio frame)": (("tts_first_audio",), 300.0),
        "network / buffer jitter margin": (
            (
                "network_in",
                "uplink_jitter_buffer",
                "network_out",
                "client_playout",
                "jitter_buffer",
            ),
            100.0,
        ),
    }
    assert PIPELINE_1_5_S.total_ms == 1500.0
    assert PIPELINE_1_5_S.unbudgeted_terms == ("sentence_aggregation", "engine_overhead")
    assert [ln.budget_ms for ln in PIPELINE_2_0_S.lines] == [200.0, 400.0, 900.0, 400.0, 100.0]
    assert PIPELINE_2_0_S.total_ms == 2000.0
    for preset in (PIPELINE_1_5_S, PIPELINE_2_0_S):  # the published columns add up
        assert sum(ln.budget_ms for ln in preset.lines) == preset.total_ms


def test_check_flags_exactly_the_lines_over_budget() -> None:
    # endpointing 250 > 200; stt 300 == 300 (not over); llm 600 == 600; tts 200;
    # network_in 30 + jitter 60 + network_out 11 = 101 > 100.
    turn = make_turn(
        4, (250.0, 300.0, 5.0, 600.0, 20.0, 200.0, 3.0, 60.0), network_in_ms=30, network_out_ms=11
    )
    assert turn.ttfat_ms == 1479.0
    overruns = PIPELINE_1_5_S.check(turn)
    assert [(o.line, o.measured_ms, o.budget_ms) for o in overruns] == [
        ("VAD silence threshold", 250.0, 200.0),
        ("network / buffer jitter margin", 101.0, 100.0),
    ]
    assert overruns[1].over_ms == 1.0
    assert all(o.turn == 4 for o in overruns)


def test_unbudgeted_terms_push_only_the_total_over() -> None:
    # every line exactly at budget (sum 1500), plus 40 ms of sentence aggregation and 2 ms overhead
    turn = make_turn(1, (200.0, 300.0, 1.0, 600.0, 40.0, 300.0, 1.0, 100.0))
    overruns = PIPELINE_1_5_S.check(turn)
    assert [(o.line, o.measured_ms) for o in overruns] == [(TOTAL_LINE, 1542.0)]
    assert overruns[0].terms == TERMS
    assert PIPELINE_2_0_S.check(turn) == []


def test_check_refuses_an_incomplete_turn() -> None:
    with pytest.raises(ValueError, match="turn 9 is incomplete"):
        PIPELINE_1_5_S.check(TurnRecord(turn=9, marks_ms={"speech_end": 0.0}))


def test_count_overruns_most_frequent_first() -> None:
    turns = [
        make_turn(1, (300.0, 10.0, 0.0, 700.0, 0.0, 10.0, 0.0, 10.0)),
        make_turn(2, (300.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0, 10.0)),
    ]
    overruns = [o for t in turns for o in PIPELINE_1_5_S.check(t)]
    assert count_overruns(overruns) == {"VAD silence threshold": 2, "LLM inference (TTFT)": 1}


def test_load_yaml_and_json_files(tmp_path: Path) -> None:
    doc = {
        "name": "tight",
        "total_ms": 900,
        "lines": [
            {"name": "turn taking", "terms": "endpointing", "budget_ms": 150},
            {"terms": ["network_in", "network_out"], "budget_ms": 40.5},
        ],
    }
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(doc), encoding="utf-8")
    for name in ("b.yaml", "b.json"):
        budget = load_budget(tmp_path / name)
        assert budget.name == "tight"
        assert budget.total_ms == 900.0
        assert budget.lines == (
            BudgetLine("turn taking", ("endpointing",), 150.0),
            BudgetLine("network_in+network_out", ("network_in", "network_out"), 40.5),
        )
        assert budget_from_arg(str(tmp_path / name)) == budget
    assert budget_from_dict(PIPELINE_2_0_S.to_dict()).lines == PIPELINE_2_0_S.lines


def test_presets_by_name() -> None:
    assert budget_from_arg(None) is PIPELINE_1_5_S
    assert budget_from_arg("2.0s") is PIPELINE_2_0_S
    assert load_budget() is PIPELINE_1_5_S
    assert load_budget(None, preset="2.0s") is PIPELINE_2_0_S
    with pytest.raises(BudgetError, match=r"unknown budget preset '3s'; presets: 1\.5s, 2\.0s"):
        load_budget(None, preset="3s")


def test_a_file_wins_over_the_preset(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("total_ms: 700\n", encoding="utf-8")
    budget = load_budget(path, preset="2.0s")
    assert (budget.total_ms, budget.lines, budget.unbudgeted_terms) == (700.0, (), TERMS)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"total_ms": 1000, "lines": [{"terms": ["llm"], "budget_ms": 5}]},
            r"b\.yaml\.lines\[0\]\.terms: unknown term 'llm'; allowed terms: network_in, "
            r"uplink_jitter_buffer, endpointing, stt_finalization, llm_ttft, sentence_aggregation",
        ),
        (
            {"total_ms": 1000, "limits": {}},
            r"b\.yaml: unknown key 'limits'; allowed keys: name, total_ms, lines, source",
        ),
        (
            {"total_ms": 1000, "lines": [{"terms": "llm_ttft", "budget": 5}]},
            r"lines\[0\]: unknown key 'budget'; allowed keys: name, terms, budget_ms",
        ),
        ({"lines": []}, r"missing key 'total_ms'"),
        (
            {"total_ms": 1000, "lines": [{"terms": "llm_ttft", "budget_ms": -5}]},
            r"lines\[0\]\.budget_ms: must be a positive number of milliseconds, got -5",
        ),
        ({"total_ms": True}, r"b\.yaml\.total_ms: expected a number of milliseconds, got True"),
        (
            {
                "total_ms": 1000,
                "lines": [
                    {"terms": "llm_ttft", "budget_ms": 500},
                    {"name": "again", "terms": ["llm_ttft"], "budget_ms": 100},
                ],
            },
            r"term 'llm_ttft' is already budgeted by line 'llm_ttft'",
        ),
        ([1, 2], r"b\.yaml: expected a mapping"),
    ],
)
def test_budget_file_errors_name_the_bad_key(tmp_path: Path, doc: object, message: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(BudgetError, match=message):
        load_budget(path)


def test_unparsable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text("{total_ms: 1000", encoding="utf-8")
    with pytest.raises(BudgetError, match=r"b\.json: not valid JSON"):
        load_budget(bad)
    with pytest.raises(
        BudgetError, match=r"budget file .*nope.yaml: no such file.*preset \(1\.5s, 2\.0s\)"
    ):
        budget_from_arg(str(tmp_path / "nope.yaml"))


def test_term_budget_constructor_validates() -> None:
    with pytest.raises(BudgetError, match="unknown term 'ttft'"):
        TermBudget(lines=(BudgetLine("x", ("ttft",), 10.0),), total_ms=100.0)
    with pytest.raises(BudgetError, match="empty"):
        TermBudget(lines=(BudgetLine("x", (), 10.0),), total_ms=100.0)
    with pytest.raises(BudgetError, match="total_ms: must be a positive"):
        TermBudget(lines=(), total_ms=0.0)
