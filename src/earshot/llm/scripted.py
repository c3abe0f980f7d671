r"""The scripted LLM: offline replies from a rules file, timed by a provider latency profile.

`ScriptedLLM` is earshot's offline default. It does not generate text: it picks a reply from a
`RuleSet` (regular expressions matched against the last user message) and streams it word by
word on the injected `Clock` — first token after ``ttft_ms``, then one token every
``ms_per_token`` — so a whole voice loop can be exercised, and its latency budget studied, with
the LLM term set to a published provider figure. It is always labelled simulated
(``simulated = True``); reports must say so.

Rules file (YAML)::

    rules:                        # tried in order; the first match wins
      - pattern: "block|printed"  # Python regex, case-insensitive, searched in the user text
        reply: "Block books were printed from carved wooden blocks."
      - pattern: '\b(hello|hi)\b'     # single quotes: YAML keeps backslashes as typed
        replies: ["Hello!", "Hi there!"]   # rotated, see `ScriptedLLM.reply_for`
    default: "I'm not sure I followed that."     # no rule matched (text or list)
    empty: "Sorry, I didn't catch that."         # the user's transcript is empty (optional)
    greeting: "Hi, how can I help?"              # no user message yet (optional)

A rule may call a tool first (`stream_events`, used by `earshot.levers.tools.ToolUsingLLM`)::

      - pattern: "time"
        tool: {name: get_time, arguments: {zone: "UTC"}}
        reply: "It is {result}."     # {result}: the tool's answer
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from earshot.clock import Clock
from earshot.inputs import read_text_file
from earshot.llm.base import ChatMessage, ToolCall

EMPTY_TRANSCRIPT_REPLY = "Sorry, I didn't catch that."
DEFAULT_GREETING = "Hi, how can I help?"

_NonEmptyText = Annotated[str, Field(min_length=1)]
_Replies = _NonEmptyText | Annotated[list[_NonEmptyText], Field(min_length=1)]
_TOKEN = re.compile(r"\S+\s*")


class RulesError(ValueError):
    """A rules file is missing, is not valid YAML, or has a bad entry. The message names both."""


class ToolRule(BaseModel):
    """A tool call a rule makes before replying: the tool's name and its arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _NonEmptyText
    arguments: dict[str, object] = Field(default_factory=dict)


class Rule(BaseModel):
    """One rule: a case-insensitive regex and the reply (or replies to rotate) when it matches;
    optionally a tool to call first (the reply's ``{result}`` is the tool's answer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: _NonEmptyText
    reply: _NonEmptyText | None = None
    replies: Annotated[list[_NonEmptyText], Field(min_length=1)] | None = None
    tool: ToolRule | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return pattern

    @model_validator(mode="after")
    def _one_reply_field(self) -> Rule:
        if (self.reply is None) == (self.replies is None):
            raise ValueError("give exactly one of 'reply: <text>' or 'replies: [<text>, ...]'")
        return self

    @property
    def choices(self) -> tuple[str, ...]:
        """The reply texts, in file order."""
        return (self.reply,) if self.reply is not None else tuple(self.replies or ())


class RuleSet(BaseModel):
    """A validated rules file (see the module docstring for the format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list)
    default: _Replies
    empty: _Replies = EMPTY_TRANSCRIPT_REPLY
    greeting: _Replies = DEFAULT_GREETING


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """How fast a simulated provider streams.

    Args:
        ttft_ms: time to first token, from the request to the first streamed token (ms).
        ms_per_token: gap between consecutive streamed tokens (ms). `ScriptedLLM` streams one
            word-ish token per word, so this is per word (real BPE tokens are a bit smaller).
        jitter: sigma of a log-normal multiplier ``exp(sigma * z)``, ``z ~ N(0, 1)``, drawn
            for the TTFT and for every token gap; 0 means exact timing. The median delay stays
            at the nominal value (e.g. 0.3 puts ~68 % of TTFTs within ×0.74–×1.35).
        name: short label used in reports.
        source: where the numbers come from.

    Raises:
        ValueError: on a negative time or jitter.
    """

    ttft_ms: float
    ms_per_token: float
    jitter: float = 0.0
    name: str = "custom"
    source: str = ""

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.ms_per_token < 0 or self.jitter < 0:
            raise ValueError(
                f"latency profile {self.name!r} needs ttft_ms, ms_per_token and jitter >= 0, "
                f"got {self.ttft_ms}, {self.ms_per_token}, {self.jitter}"
            )


_PAN = 'T. Pan, "Voice AI in Production: Engineering the 300ms Latency Budget"'
_ASSUMED = "ms_per_token assumed (no published figure)"

PROFILES: dict[str, LatencyProfile] = {
    # TTFTs are the midpoints of the provider spread quoted by T. Pan. No per-token rates are
    # published in the sources earshot cites, so those are assumptions, stated as such.
    "groq-llama": LatencyProfile(
        ttft_ms=75.0,
        ms_per_token=5.0,  # assumed ≈ 200 tok/s
        name="groq-llama",
        source=f"TTFT 50–100 ms (Groq-hosted Llama), {_PAN}; {_ASSUMED}, ≈ 200 tok/s",
    ),
    "gpt-4o-mini": LatencyProfile(
        ttft_ms=160.0,
        ms_per_token=15.0,  # assumed ≈ 67 tok/s
        name="gpt-4o-mini",
        source=f"TTFT 120–200 ms (gpt-4o-mini), {_PAN}; {_ASSUMED}, ≈ 67 tok/s",
    ),
    "gemini-flash-1.5": LatencyProfile(
        ttft_ms=300.0,
        ms_per_token=10.0,  # assumed ≈ 100 tok/s
        name="gemini-flash-1.5",
        source=f"TTFT ≈ 300 ms (Gemini Flash 1.5), {_PAN}; {_ASSUMED}, ≈ 100 tok/s",
    ),
    "gpt-4o": LatencyProfile(
        ttft_ms=700.0,
        ms_per_token=20.0,  # assumed ≈ 50 tok/s
        name="gpt-4o",
        source=f"TTFT ≈ 700 ms (GPT-4o), {_PAN}; {_ASSUMED}, ≈ 50 tok/s",
    ),
    "budget-1.5s": LatencyProfile(
        ttft_ms=600.0,
        ms_per_token=20.0,  # assumed ≈ 50 tok/s
        name="budget-1.5s",
        source=(
            'LLM TTFT 600 ms of the 1.5 s pipeline budget, "Latency Budgeting: Speed Goals for '
            f'Realtime Voice"; {_ASSUMED}, ≈ 50 tok/s'
        ),
    ),
}
"""Latency presets by name; ``gpt-4o-mini`` is the default."""

DEFAULT_PROFILE = "gpt-4o-mini"


def get_profile(name: str) -> LatencyProfile:
    """Look up a preset in `PROFILES`.

    Raises:
        ValueError: for an unknown name; the message lists the known ones.
    """
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown LLM latency profile {name!r}; choose one of: {known}") from None


def default_rules_path() -> Path:
    """Path of the bundled demo rules file, ``earshot/data/rules/default.yaml``."""
    return Path(str(resources.files("earshot") / "data" / "rules" / "default.yaml"))


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and validate a rules file.

    Args:
        path: a YAML rules file; None loads the bundled demo rules.

    Raises:
        RulesError: the file is missing or unreadable, is not YAML, or an entry is invalid;
            the message names the file and the entry (e.g. ``rules[2].pattern``).
    """
    file = default_rules_path() if path is None else Path(path)
    text = read_text_file(file, "LLM rules file", RulesError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesError(
            f"{file}: expected a mapping with 'rules' and 'default', got {type(data).__name__}"
        )
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, data) for error in exc.errors())
        raise RulesError(f"{file}: {problems}") from exc


def _describe(error: ErrorDetails, data: dict[object, object]) -> str:
    """One pydantic error as ``rules[2].pattern (pattern 'x('): <message>``."""
    loc = error["loc"]
    location = ""
    for part in loc:
        location += f"[{part}]" if isinstance(part, int) else ("." if location else "") + part
    message = error["msg"].removeprefix("Value error, ")
    where = location or "top level"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules")
        entry = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
        if isinstance(entry, dict) and isinstance(entry.get("pattern"), str):
            where += f" (pattern {entry['pattern']!r})"
    return f"{where}: {message}"


def tokenize(text: str) -> list[str]:
    """Split a reply into word-ish stream tokens: each word with its trailing whitespace.

    Punctuation stays attached to its word; ``"".join(tokenize(text)) == text.strip()``.
    """
    return _TOKEN.findall(text.strip())


class ScriptedLLM:
    """Streams rule-chosen replies with the timing of a `LatencyProfile` (see module docstring).

    Args:
        rules: the validated rules, e.g. from `load_rules`.
        profile: timing to simulate; a name from `PROFILES` or a `LatencyProfile`.
        clock: the session clock; all waits are ``clock.sleep_ms``.
        seed: picks among a rule's ``replies`` and seeds the jitter; same seed, same history →
            same reply and same timing.
    """

    simulated = True

    def __init__(
        self,
        rules: RuleSet,
        profile: LatencyProfile | str,
        clock: Clock,
        seed: int = 0,
    ) -> None:
        self.rules = rules
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.clock = clock
        self.seed = seed
        self.name = f"scripted({self.profile.name} profile)"
        self._patterns = [re.compile(rule.pattern, re.IGNORECASE) for rule in rules.rules]

    def reply_for(self, messages: Sequence[ChatMessage]) -> str:
        """The full reply `stream` will produce for this history (pure, no timing).

        The last user message is matched against the rules in order; the first match wins,
        else ``default``; a blank message gets ``empty``; no user message gets ``greeting``.
        With several replies, the i-th time the same choice is made in this history (counting
        earlier user messages) gives ``replies[(seed + i) % len(replies)]``.
        """
        user_texts = [m.content for m in messages if m.role == "user"]
        if not user_texts:
            return _pick(self.rules.greeting, self.seed)
        key = self._choice_key(user_texts[-1])
        earlier = sum(1 for text in user_texts[:-1] if self._choice_key(text) == key)
        if key == "empty":
            replies = self.rules.empty
        elif key == "default":
            replies = self.rules.default
        else:
            replies = list(self.rules.rules[int(key)].choices)
        return _pick(replies, self.seed + earlier)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yield the reply's tokens: the first ``ttft_ms`` after the first ``__anext__``, then
        one every ``ms_per_token`` (each times the jitter multiplier, if any).
        """
        tokens = tokenize(self.reply_for(messages))
        user_turns = sum(1 for m in messages if m.role == "user")
        rng = random.Random(f"{self.seed}:{user_turns}")
        await self.clock.sleep_ms(self._jittered(self.profile.ttft_ms, rng))
        for index, token in enumerate(tokens):
            if index > 0:
                await self.clock.sleep_ms(self._jittered(self.profile.ms_per_token, rng))
            yield token

    async def stream_events(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, object]]
    ) -> AsyncGenerator[str | ToolCall, None]:
        """Like `stream`, but a matching rule with a ``tool:`` among ``tools`` (OpenAI
        ``tools`` entries) first yields its `ToolCall` (after ``ttft_ms``); once the history
        ends with the tool's results, the reply streams with ``{result}`` filled in."""
        offered = {str(f.get("name")) for t in tools if isinstance(f := t.get("function"), dict)}
        results: list[str] = []
        for message in reversed(messages):
            if message.role != "tool":
                break
            results.insert(0, message.content)
        user_texts = [m.content for m in messages if m.role == "user"]
        key = self._choice_key(user_texts[-1]) if user_texts else "greeting"
        rule = self.rules.rules[key] if isinstance(key, int) else None
        if not results and rule is not None and rule.tool is not None and rule.tool.name in offered:
            user_turns = sum(1 for m in messages if m.role == "user")
            rng = random.Random(f"{self.seed}:{user_turns}:tool")
            await self.clock.sleep_ms(self._jittered(self.profile.ttft_ms, rng))
            yield ToolCall(f"call_{user_turns}", rule.tool.name, json.dumps(rule.tool.arguments))
            return
        result = "; ".join(results)
        async for token in self._stream_text(messages, result):
            yield token

    async def _stream_text(
        self, messages: Sequence[ChatMessage], result: str
    ) -> AsyncGenerator[str, None]:
        reply = self.reply_for(messages)
        if "{result}" in reply:
            reply = reply.replace("{result}", result or "unknown")
        tokens = tokenize(reply)
        user_turns = sum(1 for m in messages if m.role == "user")
        rng = random.Random(f"{self.seed}:{user_turns}")
        await self.clock.sleep_ms(self._jittered(self.profile.ttft_ms, rng))
        for index, token in enumerate(tokens):
            if index > 0:
                await self.clock.sleep_ms(self._jittered(self.profile.ms_per_token, rng))
            yield token

    def _choice_key(self, text: str) -> int | str:
        if not text.strip():
            return "empty"
        for index, pattern in enumerate(self._patterns):
            if pattern.search(text):
                return index
        return "default"

    def _jittered(self, duration_ms: float, rng: random.Random) -> float:
        if self.profile.jitter == 0:
            return duration_ms
        return duration_ms * rng.lognormvariate(0.0, self.profile.jitter)


def _pick(replies: str | list[str], index: int) -> str:
    if isinstance(replies, str):
        return replies
    return replies[index % len(replies)]
