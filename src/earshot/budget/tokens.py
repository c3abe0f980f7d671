"""Audio-token counts and cost, per turn and over a conversation whose context grows.

tokens = frame rate × codebooks per frame × seconds (§39.4.1). A conversation re-sends its
history each turn, so input tokens grow turn by turn; the part of a request that repeats the
previous request from the start (system prompt and earlier turns) is a cached prefix, priced at
the cached-input discount (≈ 50 % cheaper, §39.4.1). Three representations of the same
conversation are compared: all audio, audio with turns older than the last K summarized to text,
and all text (text ≈ 5–15 tokens/s of equivalent content, §39.4.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Literal

import yaml

Kind = Literal["audio", "text"]
Representation = Literal["audio", "summarized", "text"]


def audio_tokens(frame_rate_hz: float, codebooks: int, seconds: float) -> float:
    """Audio tokens for ``seconds`` of speech: r × C × s (§39.4.1).

    Raises:
        ValueError: a negative or zero rate or codebook count, or negative seconds.
    """
    if frame_rate_hz <= 0 or codebooks < 1 or seconds < 0:
        raise ValueError(
            f"frame_rate_hz={frame_rate_hz}, codebooks={codebooks}, seconds={seconds}: give a "
            "positive frame rate, at least one codebook and seconds ≥ 0"
        )
    return frame_rate_hz * codebooks * seconds


@cache
def token_data() -> dict[str, Any]:
    """The published figures in ``earshot/data/budget/tokens.yaml``."""
    text = (files("earshot") / "data" / "budget" / "tokens.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def default_text_tokens_per_s() -> float:
    """Midpoint of the published 5–15 text tokens per second of speech (§39.4.1)."""
    low, high = token_data()["text_tokens_per_s"]["value"]
    return (float(low) + float(high)) / 2.0


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens; ``cached_discount`` is the fraction cached input saves."""

    audio_in: float
    audio_out: float
    text_in: float
    text_out: float
    cached_discount: float = 0.5

    def input_price(self, kind: Kind, cached: bool) -> float:
        base = self.audio_in if kind == "audio" else self.text_in
        return base * (1.0 - self.cached_discount) if cached else base

    def output_price(self, kind: Kind) -> float:
        return self.audio_out if kind == "audio" else self.text_out


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation of equal turns.

    Attributes:
        turns: number of user turns (each answered by the agent).
        user_s: seconds of user speech per turn.
        agent_s: seconds of agent speech per turn.
        system_tokens: text tokens of the system prompt, sent every turn.
        audio_tokens_per_s: frame rate × codebooks of the audio tokenizer.
        text_tokens_per_s: text tokens per second of speech.
        keep_audio_turns: for the summarized representation, how many most recent earlier turns
            stay audio; older ones are text.
        summary_tokens_per_turn: text tokens a summarized turn takes; default: its transcript
            (seconds × ``text_tokens_per_s``).
    """

    turns: int
    user_s: float
    agent_s: float
    system_tokens: float
    audio_tokens_per_s: float
    text_tokens_per_s: float
    keep_audio_turns: int = 0
    summary_tokens_per_turn: float | None = None

    def __post_init__(self) -> None:
        if self.turns < 1 or self.user_s < 0 or self.agent_s < 0 or self.system_tokens < 0:
            raise ValueError(
                "a conversation needs turns ≥ 1 and non-negative seconds and system tokens"
            )
        if self.keep_audio_turns < 0:
            raise ValueError("keep_audio_turns must be 0 or more")

    @property
    def minutes(self) -> float:
        return self.turns * (self.user_s + self.agent_s) / 60.0


@dataclass(frozen=True, slots=True)
class TurnTokens:
    """Tokens of one turn's request and response (uncached = input − cached)."""

    turn: int
    input_audio: float
    input_text: float
    cached_audio: float
    cached_text: float
    output: float
    output_kind: Kind
    cost_usd: float | None

    @property
    def input_total(self) -> float:
        return self.input_audio + self.input_text

    @property
    def uncached(self) -> float:
        return self.input_total - self.cached_audio - self.cached_text


@dataclass(frozen=True, slots=True)
class ConversationTokens:
    """Per-turn tokens of one representation, and totals."""

    representation: Representation
    turns: tuple[TurnTokens, ...]
    minutes: float

    @property
    def input_total(self) -> float:
        return sum(t.input_total for t in self.turns)

    @property
    def output_total(self) -> float:
        return sum(t.output for t in self.turns)

    @property
    def cost_usd(self) -> float | None:
        costs = [t.cost_usd for t in self.turns]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    @property
    def cost_per_minute_usd(self) -> float | None:
        cost = self.cost_usd
        return None if cost is None or self.minutes == 0 else cost / self.minutes


Segment = tuple[str, Kind, float]
"""(identity, kind, tokens): equal segments at the start of two requests are a cached prefix."""


def _request(conv: Conversation, turn: int, rep: Representation) -> list[Segment]:
    """The input segments of request ``turn`` (1-based)."""

    def kind_of(j: int) -> Kind:
        if rep == "audio":
            return "audio"
        if rep == "text":
            return "text"
        return "audio" if turn - j <= conv.keep_audio_turns else "text"

    def seg(j: int, who: str, seconds: float, kind: Kind) -> Segment:
        if kind == "audio":
            return (f"{who}{j}", kind, conv.audio_tokens_per_s * seconds)
        summary = conv.summary_tokens_per_turn
        if rep == "summarized" and summary is not None:
            share = seconds / (conv.user_s + conv.agent_s) if conv.user_s + conv.agent_s else 0.5
            return (f"{who}{j}", kind, summary * share)
        return (f"{who}{j}", kind, conv.text_tokens_per_s * seconds)

    segments: list[Segment] = [("system", "text", conv.system_tokens)]
    for j in range(1, turn):
        kind = kind_of(j)
        segments += [seg(j, "user", conv.user_s, kind), seg(j, "agent", conv.agent_s, kind)]
    segments.append(seg(turn, "user", conv.user_s, "text" if rep == "text" else "audio"))
    return segments


def _cached_prefix(previous: Sequence[Segment], current: Sequence[Segment]) -> int:
    n = 0
    for a, b in zip(previous, current, strict=False):
        if a != b:
            break
        n += 1
    return n


def conversation_tokens(
    conv: Conversation, rep: Representation, prices: Prices | None = None
) -> ConversationTokens:
    """Tokens (and cost, with ``prices``) per turn for one representation of ``conv``.

    The cached part of request k is its longest run of segments equal to request k − 1's from
    the start; the first request has none cached.
    """
    out_kind: Kind = "text" if rep == "text" else "audio"
    out_tokens = (
        conv.text_tokens_per_s if rep == "text" else conv.audio_tokens_per_s
    ) * conv.agent_s
    rows: list[TurnTokens] = []
    previous: list[Segment] = []
    for k in range(1, conv.turns + 1):
        segments = _request(conv, k, rep)
        cached = _cached_prefix(previous, segments)
        tallies: dict[tuple[Kind, bool], float] = {
            (kind, is_cached): 0.0 for kind in ("audio", "text") for is_cached in (False, True)
        }
        for i, (_, kind, tokens) in enumerate(segments):
            tallies[(kind, i < cached)] += tokens
        cost: float | None = None
        if prices is not None:
            input_usd = sum(
                tokens * prices.input_price(kind, is_cached)
                for (kind, is_cached), tokens in tallies.items()
            )
            cost = (input_usd + out_tokens * prices.output_price(out_kind)) / 1e6
        rows.append(
            TurnTokens(
                turn=k,
                input_audio=tallies[("audio", False)] + tallies[("audio", True)],
                input_text=tallies[("text", False)] + tallies[("text", True)],
                cached_audio=tallies[("audio", True)],
                cached_text=tallies[("text", True)],
                output=out_tokens,
                output_kind=out_kind,
                cost_usd=cost,
            )
        )
        previous = segments
    return ConversationTokens(rep, tuple(rows), conv.minutes)
