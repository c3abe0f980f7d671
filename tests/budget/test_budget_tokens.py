"""Audio tokens per turn and over a growing conversation, exact by hand."""

from __future__ import annotations

import dataclasses

import pytest

from earshot.budget.tokens import (
    Conversation,
    Prices,
    audio_tokens,
    conversation_tokens,
    default_text_tokens_per_s,
    token_data,
)


def test_tokens_are_rate_times_codebooks_times_seconds() -> None:
    assert audio_tokens(25, 8, 1.0) == 200  # GPT-4o Realtime, §39.4.1
    assert audio_tokens(50, 8, 1.0) == 400  # SpeechTokenizer, §39.4.1
    assert audio_tokens(25, 8, 7.5) == 1500
    tokenizers = token_data()["tokenizers"]
    assert {n: t["frame_rate_hz"] * t["codebooks"] for n, t in tokenizers.items()} == {
        "gpt-4o-realtime": 200,
        "speechtokenizer": 400,
    }
    assert default_text_tokens_per_s() == 10.0  # midpoint of 5–15
    with pytest.raises(ValueError, match="positive frame rate"):
        audio_tokens(0, 8, 1.0)


CONV = Conversation(
    turns=3,
    user_s=2.0,
    agent_s=4.0,
    system_tokens=100,
    audio_tokens_per_s=200,
    text_tokens_per_s=10,
    keep_audio_turns=1,
)


def test_audio_context_grows_and_the_previous_request_is_a_cached_prefix() -> None:
    result = conversation_tokens(CONV, "audio")
    assert [t.input_total for t in result.turns] == [500, 1700, 2900]
    assert [t.cached_audio + t.cached_text for t in result.turns] == [0, 500, 1700]
    assert [t.output for t in result.turns] == [800, 800, 800]
    assert (result.input_total, result.output_total) == (5100, 2400)


def test_text_representation() -> None:
    result = conversation_tokens(CONV, "text")
    assert [t.input_total for t in result.turns] == [120, 180, 240]
    assert [t.cached_text for t in result.turns] == [0, 120, 180]
    assert result.output_total == 120


def test_summarizing_older_turns_shrinks_context_but_breaks_the_cache() -> None:
    result = conversation_tokens(CONV, "summarized")
    # Turn 3 keeps turn 2 as audio; turn 1 becomes its transcript (20 + 40 text tokens).
    assert [t.input_total for t in result.turns] == [500, 1700, 1760]
    assert (result.turns[2].input_audio, result.turns[2].input_text) == (1600, 160)
    # Turn 1 changed form, so only the system prompt is a shared prefix.
    assert result.turns[2].cached_text == 100 and result.turns[2].cached_audio == 0
    fixed = dataclasses.replace(CONV, summary_tokens_per_turn=30.0)
    assert conversation_tokens(fixed, "summarized").turns[2].input_text == 130


def test_cost_per_turn_and_per_minute() -> None:
    prices = Prices(audio_in=40, audio_out=80, text_in=2.5, text_out=10, cached_discount=0.5)
    result = conversation_tokens(CONV, "audio", prices)
    costs = [t.cost_usd for t in result.turns]
    assert costs == pytest.approx([0.08025, 0.120125, 0.144125], rel=1e-12)
    assert result.cost_usd == pytest.approx(0.3445, rel=1e-12)
    assert result.minutes == pytest.approx(0.3)
    assert result.cost_per_minute_usd == pytest.approx(0.3445 / 0.3, rel=1e-12)
    assert conversation_tokens(CONV, "audio").cost_usd is None


def test_bad_conversation() -> None:
    with pytest.raises(ValueError, match="turns ≥ 1"):
        Conversation(0, 1, 1, 0, 200, 10)
