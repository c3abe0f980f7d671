"""LLM text made safe for TTS (pure)."""

from __future__ import annotations

import pytest

from earshot.text.sanitize import sanitize_for_tts


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Hello\x00 world.", "Hello world."),
        ("bell\x07 and\x1b[31m escape", "bell and[31m escape"),
        ("line\nbreak\ttab", "line break tab"),
        ("<speak>Hi <break time='1s'/>there</speak>.", "Hi there."),
        ("**bold** and `code` and # heading", "bold and code and heading"),
        ("see [the docs](http://x.y/z) now", "see the docs now"),
        ("Tom &amp; Jerry &lt;3", "Tom & Jerry <3"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("\x00\x01\x02", ""),
        ("3 < 4 and 5 > 2", "3 < 4 and 5 > 2"),
    ],
)
def test_sanitize_for_tts(raw: str, clean: str) -> None:
    assert sanitize_for_tts(raw) == clean
