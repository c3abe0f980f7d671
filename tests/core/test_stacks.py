"""--stack presets and the per-stage flags that refine them."""

from __future__ import annotations

import pytest

from earshot.cli import build_parser
from earshot.stacks import STACKS, Stack, resolve_stack


def test_presets_and_overrides() -> None:
    assert resolve_stack(None) == Stack("pocketsphinx", "scripted", "espeak")
    assert resolve_stack("local") == Stack("whisper", "local", "piper")
    assert resolve_stack("neural") == Stack("whisper", "scripted", "piper")
    assert resolve_stack("local", llm="scripted") == STACKS["neural"]
    assert resolve_stack("fast", stt="whisper", tts="piper") == STACKS["neural"]


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="fast, neural, local"):
        resolve_stack("huge")
    with pytest.raises(ValueError, match="pocketsphinx, whisper"):
        resolve_stack(None, stt="kaldi")
    with pytest.raises(ValueError, match="scripted, openai, local"):
        resolve_stack(None, llm="gpt")


def test_every_session_command_takes_the_stack_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["converse", "--stack", "local", "--tts", "espeak"])
    assert resolve_stack(args.stack, args.stt, args.llm, args.tts) == Stack(
        "whisper", "local", "espeak"
    )
    args = parser.parse_args(["eval", "latency", "--stack", "neural", "--llm", "local"])
    assert resolve_stack(args.stack, args.stt, args.llm, args.tts) == STACKS["local"]
    with pytest.raises(SystemExit):
        parser.parse_args(["converse", "--stack", "huge"])
