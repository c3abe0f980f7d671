"""Presets reproduce their published tables; the audit flags totals the terms do not reach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from earshot.budget.audit import audit
from earshot.budget.cli import main
from earshot.budget.model import (
    NATIVE_TERMS,
    PIPELINE_TERMS,
    BudgetFileError,
    budget_from_mapping,
    load_budget,
    load_preset,
    preset_names,
)

# The published tables, transcribed term by term: name → (best, worst) ms, and the stated total.
PUBLISHED: dict[str, tuple[dict[str, tuple[float, float]], tuple[float, float] | None]] = {
    "realtime-typical": (  # §39.4.2 Table 39.4.2a, typical
        {
            "endpointing": (400, 400),
            "network_in": (50, 50),
            "prompt": (100, 100),
            "first_token": (150, 150),
            "codec_decode": (20, 20),
            "network_out": (50, 50),
            "jitter_buffer": (80, 80),
        },
        (850, 850),
    ),
    "realtime-best": (  # §39.4.2 Table 39.4.2a, best case
        {
            "endpointing": (200, 200),
            "network_in": (20, 20),
            "prompt": (40, 40),
            "first_token": (80, 80),
            "codec_decode": (10, 10),
            "network_out": (20, 20),
            "jitter_buffer": (40, 40),
        },
        (410, 410),
    ),
    "pipeline-ranges": (  # §39.2.2 Table 39.2.2, pipeline
        {
            "endpointing": (200, 500),
            "codec": (20, 40),
            "network": (30, 100),
            "stt_finalization": (200, 800),
            "llm_ttft": (200, 600),
            "tts_first_audio": (100, 400),
            "jitter_buffer": (50, 150),
        },
        (800, 2400),
    ),
    "native-ranges": (  # §39.2.2 Table 39.2.2, native realtime
        {
            "endpointing": (100, 300),
            "codec": (20, 40),
            "network": (30, 100),
            "first_token": (150, 400),
            "codec_decode": (20, 80),
            "jitter_buffer": (50, 150),
        },
        (320, 1100),
    ),
    "pipeline-1.5s": (  # Latency Budgeting, 1.5 s
        {
            "endpointing": (200, 200),
            "stt_finalization": (300, 300),
            "llm_ttft": (600, 600),
            "tts_first_audio": (300, 300),
            "margin": (100, 100),
        },
        (1500, 1500),
    ),
    "pipeline-2.0s": (  # Latency Budgeting, 2.0 s
        {
            "endpointing": (200, 200),
            "stt_finalization": (400, 400),
            "llm_ttft": (900, 900),
            "tts_first_audio": (400, 400),
            "margin": (100, 100),
        },
        (2000, 2000),
    ),
    "pipeline-sequential": (  # Latency Budgeting, sequential worst case
        {
            "endpointing": (20, 20),
            "stt": (300, 500),
            "stt_finalization": (100, 100),
            "llm": (800, 1500),
            "tts": (200, 400),
        },
        (1400, 2900),
    ),
    "streaming-300ms": (  # T. Pan
        {
            "stt_finalization": (50, 100),
            "llm_ttft": (100, 200),
            "tts_first_audio": (50, 80),
            "transport": (20, 50),
        },
        None,
    ),
}


def test_every_published_table_has_a_preset_and_no_other_exists() -> None:
    assert sorted(PUBLISHED) == preset_names()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_terms_are_the_published_numbers_with_citations(name: str) -> None:
    budget = load_preset(name)
    terms, stated = PUBLISHED[name]
    assert {t.name: (t.low_ms, t.high_ms) for t in budget.terms} == terms
    assert list(budget.term_names) == list(terms)  # published row order
    assert budget.stated_total_ms == stated
    assert budget.source
    for term in budget.terms:
        assert term.cite and term.label, f"{name}.{term.name} lacks a citation or label"
    if stated is not None:
        assert budget.stated_total_cite


def test_native_typical_and_best_are_the_seven_term_equation() -> None:
    assert load_preset("realtime-typical").term_names == NATIVE_TERMS
    assert load_preset("realtime-best").term_names == NATIVE_TERMS
    assert load_preset("pipeline-ranges").term_names == PIPELINE_TERMS


@pytest.mark.parametrize(
    ("name", "expected_sum"),
    [
        ("realtime-typical", (850, 850)),
        ("realtime-best", (410, 410)),
        ("pipeline-ranges", (800, 2590)),
        ("native-ranges", (370, 1070)),
        ("pipeline-1.5s", (1500, 1500)),
        ("pipeline-2.0s", (2000, 2000)),
        ("pipeline-sequential", (1420, 2520)),
        ("streaming-300ms", (220, 430)),
    ],
)
def test_preset_sums_by_hand(name: str, expected_sum: tuple[float, float]) -> None:
    assert load_preset(name).sum_ms() == expected_sum


def test_audit_passes_tables_that_add_up() -> None:
    for name in ("realtime-typical", "realtime-best", "pipeline-1.5s", "pipeline-2.0s"):
        check = audit(load_preset(name))
        assert check.adds_up is True, name
        assert check.difference_ms == (0.0, 0.0)


def test_audit_flags_table_39_2_2_pipeline_worst_case() -> None:
    check = audit(load_preset("pipeline-ranges"))
    assert check.adds_up is False
    assert check.difference_ms == (0.0, 190.0)
    assert "2590 vs 2400 (+190)" in check.verdict()


def test_audit_flags_table_39_2_2_native_at_both_ends() -> None:
    check = audit(load_preset("native-ranges"))
    assert check.adds_up is False
    assert check.difference_ms == (50.0, -30.0)
    assert "best 370 vs 320 (+50)" in check.verdict()
    assert "worst 1070 vs 1100 (-30)" in check.verdict()


def test_audit_sequential_case_rounding_vs_mismatch() -> None:
    check = audit(load_preset("pipeline-sequential"))
    # 1420 vs "1.4 s" is within the ±50 ms of a total printed in tenths; 2520 vs 2.9 s is not.
    assert check.tolerance_ms == 50.0
    assert check.difference_ms == (20.0, -380.0)
    assert check.adds_up is False
    assert "best" not in check.verdict() and "worst 2520 vs 2900 (-380)" in check.verdict()
    assert audit(load_preset("pipeline-sequential"), tolerance_ms=400).adds_up is True
    assert audit(load_preset("pipeline-sequential"), tolerance_ms=0).verdict().count("vs") == 2


def test_audit_300ms_budget_has_no_total_but_is_over_budget() -> None:
    check = audit(load_preset("streaming-300ms"))
    assert check.adds_up is None
    assert check.over_budget_ms == (-80.0, 130.0)
    assert "exceeds the 300 ms budget by 130 ms" in check.verdict()


def test_audit_an_adhoc_vendor_breakdown(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor.json"
    vendor.write_text(
        json.dumps({"terms": {"stt": 120, "llm": 300, "tts": 90}, "stated_total_ms": 480})
    )
    check = audit(load_budget(str(vendor)))
    assert check.sum_ms == (510.0, 510.0)
    assert check.difference_ms == (30.0, 30.0)
    assert check.verdict() == (
        "MISMATCH: terms do not add up to the stated total: 510 vs 480 (+30)"
    )


def test_audit_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("terms: {endpointing: 300, llm_ttft: 200}\nstated_total_ms: 500\n")
    assert main(["budget", "audit", str(good), "realtime-typical", "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [a["adds_up"] for a in report["audits"]] == [True, True]
    assert main(["budget", "audit"]) == 1  # the shipped presets include mismatched tables
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "pipeline-ranges" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("stated_total_ms: 3\n", "no 'terms' key"),
        ("terms: {endpointing: [500, 200]}\n", "low ≤ high"),
        ("terms: {endpointing: fast}\n", "give ms as a number"),
        ("terms: [{name: endpointing}]\n", "'name' and 'ms'"),
        ("terms: {endpointing: 1}\nform: hybrid\n", "form 'hybrid'"),
    ],
)
def test_bad_breakdown_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(content)
    with pytest.raises(BudgetFileError, match=message):
        load_budget(str(path))


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(BudgetFileError, match="realtime-typical"):
        load_budget("no-such-preset")


def test_duplicate_terms_rejected() -> None:
    with pytest.raises(BudgetFileError, match="more than once"):
        budget_from_mapping(
            {"terms": [{"name": "endpointing", "ms": 1}, {"name": "endpointing", "ms": 2}]}
        )
