"""One redaction function and one markdown-cell escape, and the report that uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot.metrics.budget import PIPELINE_1_5_S
from earshot.metrics.report import write_report_md
from earshot.metrics.stats import summarize
from earshot.metrics.turn import MARKS, TurnRecord
from earshot.safe_text import markdown_cell, printable, redact, register_secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:password@host/v1", "http://***@host/v1"),
        ("https://token@api.example.com/v1 ok", "https://***@api.example.com/v1 ok"),
        ("Authorization: Bearer abc123def456", "Authorization: Bearer ***"),
        ('{"api_key": "k-99887766"}', '{"api_key": "***"}'),
        ("password=hunter2 and more", "password=*** and more"),
        ("key sk-proj-AbCdEf0123456789xyz leaked", "key *** leaked"),
        ("hf_abcdefghijklmnopqrstuvwx", "***"),
        # ordinary text is left alone
        ("no first token within 300 ms", "no first token within 300 ms"),
        ("http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000/v1/chat/completions"),
        ("mail bob@example.com", "mail bob@example.com"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_registered_secret_is_redacted_wherever_it_appears() -> None:
    register_secret("plainsecretvalue")
    assert redact("server said: plainsecretvalue is wrong") == "server said: *** is wrong"
    register_secret("ab")  # too short to be told from ordinary text: ignored
    assert redact("tab") == "tab"


def test_markdown_cell_escapes_everything_an_llm_can_write() -> None:
    nasty = "Hi\x00 <script>alert(1)</script> | x\x1b[31m\r\nnext & <!-- c -->"
    cell = markdown_cell(nasty)
    assert cell == (
        "Hi\\x00 &lt;script&gt;alert(1)&lt;/script&gt; \\| x\\x1b[31m next &amp; &lt;!-- c --&gt;"
    )
    assert markdown_cell("   ") == "—"
    assert markdown_cell("abcdefghij", 5) == "abcd…"
    assert printable("a\x07b\n c") == "a\\x07b c"


def test_the_report_never_holds_raw_llm_markup(tmp_path: Path) -> None:
    marks = {name: 1000.0 + 100.0 * i for i, name in enumerate(MARKS)}
    turn = TurnRecord(
        1,
        marks,
        user_text="hello | there",
        agent_text="<img src=x onerror=alert(1)>\x00 ok | done",
        extra={"llm_error": "HTTP 500 from http://u:pw123456@h/v1: <b>bad</b>"},
    )
    path = tmp_path / "report.md"
    write_report_md(path, [turn], summarize([turn]), PIPELINE_1_5_S, {"llm": "x (real)"}, {})
    text = path.read_text()
    assert "\x00" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;\\x00 ok \\| done" in text
    assert "hello \\| there" in text
    assert "pw123456" not in text and "http://***@h/v1" in text
