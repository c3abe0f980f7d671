"""ScriptedLLM: rules, exact timing on a SimulatedClock, rules-file errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from earshot.clock import SimulatedClock
from earshot.llm import (
    PROFILES,
    LatencyProfile,
    RulesError,
    RuleSet,
    ScriptedLLM,
    load_rules,
    make_llm,
)
from earshot.llm.base import ChatMessage
from earshot.llm.scripted import EMPTY_TRANSCRIPT_REPLY, tokenize

RULES = RuleSet.model_validate(
    {
        "rules": [
            {"pattern": r"\bblock", "reply": "Block books came first. Then movable type."},
            {"pattern": "hello|hi", "replies": ["Hello!", "Hi again!", "Hey, third time!"]},
        ],
        "default": "I see.",
    }
)


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def timed_stream(
    llm: ScriptedLLM, clock: SimulatedClock, messages: Sequence[ChatMessage]
) -> list[tuple[float, str]]:
    async def main() -> list[tuple[float, str]]:
        start_ms = clock.now_ms()
        return [(clock.now_ms() - start_ms, token) async for token in llm.stream(messages)]

    return clock.run(main)


def test_first_token_at_ttft_then_one_per_gap() -> None:
    clock = SimulatedClock(charge_compute=False)
    profile = LatencyProfile(ttft_ms=160.0, ms_per_token=15.0, name="test")
    llm = ScriptedLLM(RULES, profile, clock)

    timeline = timed_stream(llm, clock, [user("Tell me about BLOCK books")])

    assert [token for _, token in timeline] == [
        "Block ",
        "books ",
        "came ",
        "first. ",
        "Then ",
        "movable ",
        "type.",
    ]
    assert [t for t, _ in timeline] == pytest.approx([160.0 + 15.0 * i for i in range(7)], abs=1e-6)
    assert llm.name == "scripted(test profile)"
    assert llm.simulated is True


def test_preset_profile_timing_and_token_count() -> None:
    clock = SimulatedClock(charge_compute=False)
    llm = ScriptedLLM(load_rules(), "gpt-4o-mini", clock)
    messages = [user("it's never been surpassed")]
    reply = llm.reply_for(messages)

    timeline = timed_stream(llm, clock, messages)

    assert "".join(token for _, token in timeline) == reply
    assert len(timeline) == len(reply.split())
    assert timeline[0][0] == pytest.approx(160.0, abs=1e-6)
    assert timeline[-1][0] == pytest.approx(160.0 + 15.0 * (len(timeline) - 1), abs=1e-6)
    assert llm.name == "scripted(gpt-4o-mini profile)"


def test_jitter_is_deterministic_per_seed() -> None:
    profile = LatencyProfile(ttft_ms=300.0, ms_per_token=10.0, jitter=0.3, name="jittery")
    messages = [user("hello")]

    def times(seed: int) -> list[float]:
        clock = SimulatedClock(charge_compute=False)
        return [
            t
            for t, _ in timed_stream(ScriptedLLM(RULES, profile, clock, seed=seed), clock, messages)
        ]

    assert times(7) == times(7)
    assert times(7) != times(8)
    assert times(7)[0] != pytest.approx(300.0, abs=1e-6)


def test_rules_match_case_insensitively_in_order_and_rotate() -> None:
    llm = ScriptedLLM(RULES, PROFILES["groq-llama"], SimulatedClock())
    assert llm.reply_for([user("HELLO there")]) == "Hello!"
    history = [
        user("hi"),
        ChatMessage("assistant", "Hello!"),
        user("hi"),
        ChatMessage("assistant", "Hi again!"),
    ]
    assert llm.reply_for([*history[:2], user("hello")]) == "Hi again!"
    assert llm.reply_for([*history, user("hi")]) == "Hey, third time!"
    assert (
        llm.reply_for([*history, user("hi"), ChatMessage("assistant", "x"), user("hi")]) == "Hello!"
    )
    # "block" is listed first, so it wins over "hi" in the same utterance.
    assert llm.reply_for([user("hi, block books?")]) == "Block books came first. Then movable type."
    # The seed shifts the rotation.
    assert (
        ScriptedLLM(RULES, "groq-llama", SimulatedClock(), seed=1).reply_for([user("hi")])
        == "Hi again!"
    )


def test_default_empty_and_greeting_replies() -> None:
    llm = ScriptedLLM(RULES, "gpt-4o", SimulatedClock())
    assert llm.reply_for([user("what is the weather like")]) == "I see."
    assert llm.reply_for([user("   ")]) == EMPTY_TRANSCRIPT_REPLY == "Sorry, I didn't catch that."
    assert llm.reply_for([]) == "Hi, how can I help?"


def test_bundled_rules_route_pocketsphinx_mishearings() -> None:
    # What pocketsphinx 5 (bundled en-US model) made of the demo clips in data/speech, in
    # batch and in 20 ms streaming mode; each must reach its own rule, not the default.
    rules = load_rules()
    llm = ScriptedLLM(rules, "gpt-4o-mini", SimulatedClock())
    heard = {
        "him being comparatively mater": "Comparatively modern",
        "it compared to modern": "Comparatively modern",
        "it's never been surpassed": "Never surpassed",
        "and in the same operations without really wants": "Good point",
        "reduced the block looks which were the immediate predecessors of the true printed book": (
            "Block books"
        ),
        "and i began companies they can call me at the": "Nice to meet you!",
        "none of the bill clinton's we can call me at the": "Nice to meet you!",
        "I'm Abigail Claflin, you can call me Abbie": "Nice to meet you, Abbie!",
    }
    for text, opening in heard.items():
        reply = llm.reply_for([user(text)])
        assert reply.startswith(opening), (text, reply)
        sentences = [s for s in reply.replace("!", ".").replace("?", ".").split(".") if s.strip()]
        assert 2 <= len(sentences) <= 3, reply
    assert llm.reply_for([user("")]) == "Sorry, I didn't catch that."
    assert llm.reply_for([user("zzz qqq")]) in rules.default


def test_tokenize_keeps_punctuation_and_spacing() -> None:
    assert tokenize("  Hi, there!  How are you? ") == ["Hi, ", "there!  ", "How ", "are ", "you?"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - pattern: 'ok'\n    reply: fine\n"
            "  - pattern: 'broken('\n    reply: x\ndefault: hm\n",
            r"rules\[1\]\.pattern \(pattern 'broken\('\): "
            r"invalid regular expression 'broken\(': missing \)",
        ),
        (
            "rules:\n  - pattern: 'a'\n    reply: x\n    replies: [y]\ndefault: hm\n",
            r"rules\[0\] \(pattern 'a'\): give exactly one of 'reply: <text>' or 'replies",
        ),
        (
            "rules:\n  - pattern: 'a'\n    replies: []\ndefault: hm\n",
            r"rules\[0\]\.replies \(pattern 'a'\): List should",
        ),
        (
            "rules:\n  - patern: 'a'\n    reply: x\ndefault: hm\n",
            r"rules\[0\]\.patern: Extra inputs",
        ),
        ("rules: []\n", r"default: Field required"),
        ("rules: [\n", r"not valid YAML"),
        ("- just a list\n", r"expected a mapping with 'rules' and 'default', got list"),
    ],
)
def test_bad_rules_file_names_file_and_entry(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RulesError, match=expected) as info:
        load_rules(path)
    assert str(info.value).startswith(f"{path}: ")


def test_missing_rules_file() -> None:
    with pytest.raises(RulesError, match=r"LLM rules file /nonexistent/rules.yaml: no such file"):
        load_rules("/nonexistent/rules.yaml")


def test_factory_and_profile_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "default: Only this.\n")
    llm = make_llm("scripted", SimulatedClock(), rules_path=path, profile="groq-llama")
    assert isinstance(llm, ScriptedLLM)
    assert llm.reply_for([user("anything")]) == "Only this."
    assert llm.profile == PROFILES["groq-llama"]
    with pytest.raises(
        ValueError, match=r"unknown LLM latency profile 'gpt-5'; choose one of: .*gpt-4o-mini"
    ):
        make_llm("scripted", SimulatedClock(), profile="gpt-5")
    with pytest.raises(ValueError, match=r"ttft_ms, ms_per_token and jitter >= 0"):
        LatencyProfile(ttft_ms=-1.0, ms_per_token=10.0)


def test_presets_cite_their_source() -> None:
    assert {"groq-llama", "gpt-4o-mini", "gemini-flash-1.5", "gpt-4o", "budget-1.5s"} <= set(
        PROFILES
    )
    for name, profile in PROFILES.items():
        assert profile.name == name
        assert profile.source
        assert "assumed" in profile.source
    assert PROFILES["gpt-4o"].ttft_ms == 700.0
    assert PROFILES["budget-1.5s"].ttft_ms == 600.0
