"""The runs of the lever evaluation: TTFT trials against the real servers, and whole sessions.

* `ttft_trials` sends the same prompts through several arms (e.g. one request vs hedged),
  **interleaved** — prompt i goes through every arm before prompt i+1, the arm order rotating —
  so a change in machine load (two shared cores) hits every arm alike. Each reply is read to
  its end, as a session would.
* `run_caller` runs one recorded caller track through a real `Session` (Silero VAD, fixed
  end-pointer, pocketsphinx, espeak-ng) with the LLM (and levers) given, on a `SimulatedClock`
  that charges compute and waits for the network in real time, so latencies are real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from earshot.clock import Clock
from earshot.levers.notes import bind_turn_notes
from earshot.llm.base import ChatMessage, LanguageModel, LlmError
from earshot.metrics.turn import TurnRecord


@dataclass(frozen=True, slots=True)
class TtftTrial:
    """One request through one arm.

    Attributes:
        ttft_ms: request → first non-empty delta (None: it failed before one).
        total_ms: request → end of the reply.
        chars: characters of reply text received.
        notes: what levers recorded (e.g. ``llm_hedge``).
        error: the failure, if any.
    """

    ttft_ms: float | None
    total_ms: float
    chars: int
    notes: dict[str, Any] = field(default_factory=dict)
    error: str = ""


async def _one_request(
    llm: LanguageModel, messages: Sequence[ChatMessage], clock: Clock
) -> TtftTrial:
    notes: dict[str, Any] = {}
    start_ms = clock.now_ms()
    first_ms: float | None = None
    chars = 0
    error = ""
    with bind_turn_notes(notes):
        try:
            async with contextlib.aclosing(llm.stream(messages)) as stream:
                async for delta in stream:
                    if delta and first_ms is None:
                        first_ms = clock.now_ms()
                    chars += len(delta)
        except LlmError as exc:
            error = str(exc)
    end_ms = clock.now_ms()
    return TtftTrial(
        None if first_ms is None else first_ms - start_ms, end_ms - start_ms, chars, notes, error
    )


async def ttft_trials(
    arms: Mapping[str, LanguageModel],
    prompts: Sequence[str],
    clock: Clock,
    num_trials: int,
    system_prompt: str | None = None,
    on_trial: Callable[[int], None] | None = None,
) -> dict[str, list[TtftTrial]]:
    """``num_trials`` prompts (cycling through ``prompts``) through every arm, interleaved.

    Raises:
        ValueError: no arms or no prompts.
    """
    if not arms or not prompts:
        raise ValueError("TTFT trials need at least one arm and one prompt")
    names = list(arms)
    results: dict[str, list[TtftTrial]] = {name: [] for name in names}
    for i in range(num_trials):
        messages = [ChatMessage("user", prompts[i % len(prompts)])]
        if system_prompt:
            messages.insert(0, ChatMessage("system", system_prompt))
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(await _one_request(arms[name], messages, clock))
        if on_trial is not None:
            on_trial(i + 1)
    return results


def turn_values(turns: Sequence[TurnRecord], what: str) -> list[float]:
    """Per complete turn, ``"ttfat"`` or a term's ms."""
    out: list[float] = []
    for turn in turns:
        terms = turn.terms_ms
        ttfat = turn.ttfat_ms
        if terms is None or ttfat is None:
            continue
        out.append(ttfat if what == "ttfat" else terms[what])
    return out
