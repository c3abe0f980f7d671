"""Cache-friendly context: a stable prefix, history appended, old turns folded into a summary.

An LLM server reuses the work of a prompt prefix it has seen: llama.cpp keeps the KV cache of
the longest common prefix with the previous request, and hosted APIs cache prompt prefixes
(OpenAI automatically, on the first 1024 tokens; cached input ≈ 50 % cheaper, §39.4.1; prompt
caching drops t_prompt to single-digit ms, §39.4). Only the part after the first changed token
is prefilled again. So the prompt must only ever grow at its end:

* the system prompt is fixed for the call (no clock, no turn counter in it);
* history is appended, never rewritten;
* to bound its length, turns older than ``keep_turns`` are folded into a summary — in blocks
  of ``fold_turns``, so the summary (and with it the prefix) changes once every ``fold_turns``
  turns instead of every turn.

`build_context` is the pure rule; `ContextLLM` applies it in front of any `LanguageModel`.
The default summary is extractive (the first words of each folded message): no model call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

from earshot.llm.base import ChatMessage, LanguageModel

SUMMARY_HEADER = "Earlier in this call:"


def extractive_summary(messages: Sequence[ChatMessage], words_per_message: int = 12) -> str:
    """The first ``words_per_message`` words of each message, labelled by speaker."""
    parts: list[str] = []
    for m in messages:
        if m.role not in ("user", "assistant") or not m.content.strip():
            continue
        words = m.content.split()
        text = " ".join(words[:words_per_message]) + (
            " …" if len(words) > words_per_message else ""
        )
        parts.append(f"{'Caller' if m.role == 'user' else 'Agent'}: {text}")
    return " ".join(parts)


def _turn_starts(history: Sequence[ChatMessage]) -> list[int]:
    return [i for i, m in enumerate(history) if m.role == "user"]


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    """How much history to send.

    Args:
        keep_turns: the most recent user turns always sent verbatim.
        fold_turns: older turns are folded into the summary this many at a time.

    Raises:
        ValueError: ``keep_turns`` or ``fold_turns`` below 1.
    """

    keep_turns: int = 8
    fold_turns: int = 4

    def __post_init__(self) -> None:
        if self.keep_turns < 1 or self.fold_turns < 1:
            raise ValueError("keep_turns and fold_turns must be >= 1")

    def folded(self, num_turns: int) -> int:
        """How many of ``num_turns`` user turns are summarized (a multiple of fold_turns)."""
        excess = max(0, num_turns - self.keep_turns)
        return -(-excess // self.fold_turns) * self.fold_turns if excess else 0


def build_context(
    system_prompt: str,
    history: Sequence[ChatMessage],
    policy: ContextPolicy,
    summarize: Callable[[Sequence[ChatMessage]], str] = extractive_summary,
) -> list[ChatMessage]:
    """The messages to send: system prompt, summary of folded turns (if any), the rest verbatim.

    A leading system message in ``history`` replaces ``system_prompt``.
    """
    system = system_prompt
    rest = list(history)
    if rest and rest[0].role == "system":
        system, rest = rest[0].content, rest[1:]
    starts = _turn_starts(rest)
    folded = min(policy.folded(len(starts)), len(starts))
    out: list[ChatMessage] = [ChatMessage("system", system)] if system else []
    if folded:
        cut = starts[folded] if folded < len(starts) else len(rest)
        summary = summarize(rest[:cut])
        if summary:
            out.append(ChatMessage("system", f"{SUMMARY_HEADER} {summary}"))
        rest = rest[cut:]
    out.extend(rest)
    return out


class ContextLLM:
    """A `LanguageModel` that sends `build_context` of the history to ``inner``.

    Give ``inner`` an empty system prompt of its own (e.g. ``OpenAICompatLLM(...,
    system_prompt="")``): this wrapper sends ``system_prompt`` first.
    """

    def __init__(
        self,
        inner: LanguageModel,
        system_prompt: str,
        policy: ContextPolicy | None = None,
        summarize: Callable[[Sequence[ChatMessage]], str] = extractive_summary,
    ) -> None:
        self.inner = inner
        self.system_prompt = system_prompt
        self.policy = policy or ContextPolicy()
        self.summarize = summarize
        self.name = f"{inner.name} (context: keep {self.policy.keep_turns} turns)"
        self.simulated = inner.simulated

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        return self.inner.stream(
            build_context(self.system_prompt, messages, self.policy, self.summarize)
        )
