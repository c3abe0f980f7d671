"""`earshot budget` through argparse: help, tables, JSON, charts, errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from earshot.budget import cli
from earshot.budget.cli import main
from earshot.budget.dists import expected_tokens_per_step, speculative_speedup


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main([*argv, "--json", "-"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["budget"], "--lever"),
        (["budget", "presets"], "--terms"),
        (["budget", "levers"], "--json"),
        (["budget", "audit"], "stated total"),
        (["budget", "tokens"], "--keep-audio-turns"),
        (["budget", "spec"], "--draft-cost"),
        (["budget", "hedge"], "--requests"),
    ],
)
def test_every_subcommand_has_useful_help(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out


def test_add_parser_wires_into_a_main_parser_beside_other_commands() -> None:
    parser = argparse.ArgumentParser(prog="earshot")
    subparsers = parser.add_subparsers(dest="command")
    subparsers.add_parser("converse").add_argument("--preset")
    cli.add_parser(subparsers)
    args = parser.parse_args(["budget", "--preset", "realtime-best", "--lever", "jitter_buffer=20"])
    assert (args.command, args.preset, args.lever, args.budget_verb) == (
        "budget",
        "realtime-best",
        ["jitter_buffer=20"],
        None,
    )
    assert args.func is cli.run
    assert parser.parse_args(["budget", "audit", "realtime-best"]).func is cli.run


def test_preset_projection_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["budget", "--preset", "realtime-typical", "--lever", "vad_silence=200"]
    data = run_json([*argv, "--lever", "jitter_buffer=40"], capsys)
    bounds = data["bounds"]
    assert bounds["baseline"]["ttfat_ms"] == [850, 850]
    assert [lever["ttfat_delta_ms"] for lever in bounds["levers"]] == [[-200, -200], [-40, -40]]
    assert bounds["levers"][0]["delta_ms"]["endpointing"] == [-200, -200]
    assert bounds["what_if"]["ttfat_ms"] == [610, 610]
    assert bounds["audit"]["adds_up"] is True


def test_preset_table_and_simulation_print(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["budget", "--preset", "pipeline-ranges", "--lever", "hedge=2", "--simulate"]
    assert main([*argv, "--samples", "2000"]) == 0
    out = capsys.readouterr().out
    assert "800–2590" in out and "MISMATCH" in out and "2590 vs 2400 (+190)" in out
    assert "TTFAT p99" in out and "p99 tail driven by" in out
    assert "p50 = lo and p99 = hi" in out  # the stated assumption


def test_dist_override_feeds_the_simulation(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "budget",
        "--preset",
        "pipeline-1.5s",
        "--dist",
        "llm_ttft=600:600",
        "--samples",
        "1000",
    ]
    data = run_json(argv, capsys)
    simulation = data["simulation"]
    assert simulation["baseline"]["ttfat_percentiles_ms"] == {"p50": 1500, "p95": 1500, "p99": 1500}


def test_json_file_and_chart_are_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, chart = tmp_path / "r.json", tmp_path / "c.png"
    argv = ["budget", "--preset", "native-ranges", "--lever", "codec=opus10", "--simulate"]
    argv += ["--samples", "1000", "--json", str(out_json), "--chart", str(chart)]
    assert main(argv) == 0
    assert "native-ranges" in capsys.readouterr().out  # tables still printed
    data = json.loads(out_json.read_text())
    assert data["bounds"]["what_if"]["terms_ms"]["codec"] == [10, 30]
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "r.json"]


def test_presets_and_levers_lists(capsys: pytest.CaptureFixture[str]) -> None:
    presets = run_json(["budget", "presets"], capsys)["presets"]
    assert len(presets) == 8
    levers = run_json(["budget", "levers"], capsys)["levers"]
    assert {lever["name"] for lever in levers} >= {
        "vad_silence",
        "spec_decode",
        "hedge",
        "preemptive",
    }


def test_spec_reports_the_formula_and_simulation(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(["budget", "spec", "--samples", "200000"], capsys)
    assert data["expected_tokens_per_step"] == expected_tokens_per_step(0.7, 4)
    assert data["speedup"] == speculative_speedup(0.7, 4, 0.125)
    error = abs(float(data["simulated_tokens_per_step"]) - float(data["expected_tokens_per_step"]))
    assert error < 4 * float(data["simulated_standard_error"])
    assert main(["budget", "spec"]) == 0
    assert "prints 2.79" in capsys.readouterr().out


def test_hedge_closed_form_against_simulation(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(["budget", "hedge", "--p50", "400", "--p99", "1600", "--requests", "2"], capsys)
    quantiles = data["quantiles"]
    for row in quantiles.values():
        assert row["hedged_simulated_ms"] == pytest.approx(row["hedged_closed_form_ms"], rel=0.03)
        assert row["hedged_closed_form_ms"] < row["single_ms"]
    assert quantiles["p50"]["single_ms"] == pytest.approx(400.0)


def test_tokens_command(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["budget", "tokens", "--turns", "3", "--user-s", "2", "--agent-s", "4"]
    argv += ["--system-tokens", "100", "--keep-audio-turns", "1"]
    argv += ["--price-audio-in", "40", "--price-audio-out", "80"]
    argv += ["--price-text-in", "2.5", "--price-text-out", "10"]
    data = run_json(argv, capsys)
    reps = {r["representation"]: r for r in data["representations"]}
    assert (reps["audio"]["input_tokens"], reps["summarized"]["input_tokens"]) == (5100, 3960)
    assert reps["text"]["input_tokens"] == 540
    assert reps["audio"]["cost_per_minute_usd"] == pytest.approx(0.3445 / 0.3)
    assert main([*argv, "--prefill-ms-per-token", "0.1"]) == 0
    assert "prefill ms" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["budget"], "give --preset NAME"),
        (["budget", "--preset", "nope"], "no preset named 'nope'"),
        (["budget", "--preset", "realtime-typical", "--lever", "vad=1"], "unknown lever 'vad'"),
        (["budget", "--preset", "realtime-typical", "--dist", "endpointing=9"], "TERM=P50:P99"),
        (
            ["budget", "--preset", "realtime-typical", "--simulate", "--samples", "10"],
            "at least 1000",
        ),
        (["budget", "--from", "/nonexistent/run"], "no such file"),
        (["budget", "tokens", "--price-audio-in", "1"], "give all four prices"),
        (["budget", "tokens", "--tokenizer", "mimi"], "gpt-4o-realtime"),
    ],
)
def test_errors_exit_2_with_the_fix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
