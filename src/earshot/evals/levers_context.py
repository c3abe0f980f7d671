"""The context arm of `earshot eval levers`: ``llm_ttft`` against prompt length, with the
cache-friendly context (`earshot.levers.context`) on and off, against the real server.

A call's prompt grows turn by turn. What the server must prefill again is everything after the
first token that differs from the previous request: with the context lever on (a fixed system
prompt, history appended, old turns folded into a summary in blocks) that is the new turn
alone; off, the prefix changes on every request (here: a request counter in the system prompt,
as a clock or a per-turn note there would do), so the whole prompt is prefilled every time.
Both arms send the same turns through the same `build_context` policy, so a request's prompt
is the same length in both; only the stable prefix differs.

* **Requests.** Each turn is one request asking for one token (``max_tokens=1``, not
  streamed): the reply arrives right after the first token, so the request's wall time is its
  TTFT, and the server's ``usage.prompt_tokens`` gives the prompt length (llama-cpp-python
  reports usage only on unstreamed replies). The history's agent turns are a fixed line, so
  consecutive prompts of one arm share exactly the previous prompt as their prefix.
* **Blocks.** One server holds one live context, so an arm's requests must follow one another:
  each arm runs a whole call of ``turns`` requests, in the order on, off, off, on (a drift in
  the machine's load hits both arms alike). The server's RAM prompt cache is off
  (`earshot.evals.levers_trial.SESSION_PROMPT_CACHE`): the reuse measured is llama.cpp's
  prefix match on its live context, what a stable prefix buys from any llama.cpp-style server.
* **The budget model beside it.** From the off arm alone: a least-squares line of TTFT on
  prompt tokens (its intercept kept >= 0) gives the prefill time per token (§39.4: prefill is
  linear in the uncached tokens). Each off request is then projected with ``earshot budget``'s
  ``prompt_cache=F,prompt_tokens=N,prefill_ms_per_token=MS`` lever, F being the share of the
  matching on request's prompt that the previous on request had already sent (all of it while
  the history is only appended; after a fold, the text both still begin with — the system
  prompt and the head of the summary; 0 for a call's first request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from earshot.budget.lever_base import PathState
from earshot.budget.levers import apply_lever, parse_lever
from earshot.budget.montecarlo import SampleMode
from earshot.clock import Stopwatch
from earshot.evals.levers_stats import QS, compare, pct
from earshot.evals.levers_types import ContextDoc, ContextRequestDoc
from earshot.levers.context import ContextPolicy, build_context
from earshot.llm.base import ChatMessage

CONTEXT_SYSTEM = (
    "You are a helpful voice assistant on a phone call. Keep every reply to one short sentence."
)
AGENT_LINE = "Sure, I can help you with that."
"""Every agent turn of the history (fixed: consecutive prompts share exactly their prefix)."""
CONTEXT_TURNS = 24
"""Requests per call: past ``keep_turns`` (8) the lever folds 4 turns at a time."""
QUICK_CONTEXT_TURNS = 6
CONTEXT_POLICY = ContextPolicy(keep_turns=8, fold_turns=4)
BLOCKS: tuple[str, ...] = ("on", "off", "off", "on")
REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class ContextRequest:
    """One request of the context arm.

    Attributes:
        arm: ``"on"`` (stable prefix) or ``"off"`` (prefix changed every request).
        block: which call of the arm (0, 1, …).
        turn: the request's turn in its call (0 = first).
        prompt_tokens: the server's ``usage.prompt_tokens`` (None: it reported none).
        reused_tokens: tokens at the head of the prompt the previous request of the call had
            sent: its whole prompt when this one extends it, else the share of the text both
            begin with (`shared_head`) of this prompt's tokens; None for a call's first.
        ttft_ms: request → reply (one token, so its TTFT; None: it failed).
        error: the failure, if any.
    """

    arm: str
    block: int
    turn: int
    prompt_tokens: int | None
    reused_tokens: int | None
    ttft_ms: float | None
    error: str = ""
    extended: bool = False
    """The prompt began with the whole previous prompt of the call (only appended to)."""

    def to_json(self) -> ContextRequestDoc:
        return {
            "arm": self.arm,
            "block": self.block,
            "turn": self.turn,
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "error": self.error,
            "extended": self.extended,
        }


def call_histories(user_texts: Sequence[str], turns: int) -> list[list[ChatMessage]]:
    """The history before each of ``turns`` requests of one call: the callers' utterances in
    turn (cycling), each answered by `AGENT_LINE`, ending on the new user turn.

    Raises:
        ValueError: no user texts, or ``turns`` < 1.
    """
    texts = [t for t in user_texts if t.strip()]
    if not texts or turns < 1:
        raise ValueError("the context arm needs at least one user text and one turn")
    out: list[list[ChatMessage]] = []
    history: list[ChatMessage] = []
    for i in range(turns):
        history.append(ChatMessage("user", texts[i % len(texts)]))
        out.append(list(history))
        history.append(ChatMessage("assistant", AGENT_LINE))
    return out


def arm_messages(arm: str, history: Sequence[ChatMessage], request: int) -> list[ChatMessage]:
    """What the arm sends for ``history``: the lever's context, with (``off``) a system prompt
    that names the request, so no two requests share more than the chat template's head."""
    system = CONTEXT_SYSTEM if arm == "on" else f"{CONTEXT_SYSTEM} (Request {request}.)"
    return build_context(system, history, CONTEXT_POLICY)


def extends(previous: Sequence[ChatMessage] | None, messages: Sequence[ChatMessage]) -> bool:
    """``messages`` begins with every message of ``previous`` (its prefix was sent before)."""
    if previous is None or len(previous) > len(messages):
        return False
    return all(a == b for a, b in zip(previous, messages, strict=False))


def shared_head(previous: Sequence[ChatMessage] | None, messages: Sequence[ChatMessage]) -> float:
    """The share of ``messages``' text (roles and contents, in order) that ``previous`` began
    with too: where a fold rewrites the summary, the summary of the turns folded before is
    still its head, and the server reuses those tokens as well. 0 without ``previous``."""
    if previous is None:
        return 0.0
    a, b = _flat(previous), _flat(messages)
    if not b:
        return 0.0
    limit = min(len(a), len(b))
    same = next((i for i in range(limit) if a[i] != b[i]), limit)
    return same / len(b)


def _flat(messages: Sequence[ChatMessage]) -> str:
    return "".join(f"\x00{m.role}\x01{m.content}" for m in messages)


def run_context_arm(
    base_url: str, model: str, user_texts: Sequence[str], turns: int
) -> list[ContextRequest]:
    """Every request of the `BLOCKS` calls against ``base_url`` (blocking; real time).

    Raises:
        ValueError: no user texts or no turns.
    """
    import httpx

    histories = call_histories(user_texts, turns)
    out: list[ContextRequest] = []
    counter = 0
    blocks_seen: dict[str, int] = {}
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for arm in BLOCKS:
            block = blocks_seen.get(arm, 0)
            blocks_seen[arm] = block + 1
            previous: list[ChatMessage] | None = None
            previous_tokens: int | None = None
            for turn, history in enumerate(histories):
                counter += 1
                messages = arm_messages(arm, history, counter)
                ttft, tokens, error = _one_token(client, base_url, model, messages)
                reused = _reused_tokens(previous, previous_tokens, messages, tokens)
                kept = extends(previous, messages)
                out.append(ContextRequest(arm, block, turn, tokens, reused, ttft, error, kept))
                previous, previous_tokens = messages, tokens
    return out


def _reused_tokens(
    previous: Sequence[ChatMessage] | None,
    previous_tokens: int | None,
    messages: Sequence[ChatMessage],
    tokens: int | None,
) -> int | None:
    """Prompt tokens at the head the previous request of the call had sent: all of its prompt
    when this one extends it; else the `shared_head` share of this prompt's tokens."""
    if previous is None or tokens is None:
        return None
    if extends(previous, messages) and previous_tokens is not None:
        return previous_tokens
    return round(shared_head(previous, messages) * tokens)


def _one_token(
    client: Any, base_url: str, model: str, messages: Sequence[ChatMessage]
) -> tuple[float | None, int | None, str]:
    import httpx

    body = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": 1,
        "temperature": 0.0,
        "stream": False,
    }
    watch = Stopwatch()  # the request's real wall time: its TTFT (one token)
    try:
        response = client.post(f"{base_url.rstrip('/')}/chat/completions", json=body)
        elapsed_ms = watch.elapsed_ms()
        response.raise_for_status()
        usage = response.json().get("usage") or {}
    except (httpx.HTTPError, ValueError) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    tokens = usage.get("prompt_tokens")
    return elapsed_ms, tokens if isinstance(tokens, int) else None, ""


def prefill_fit(requests: Sequence[ContextRequest]) -> tuple[float, float] | None:
    """Least-squares ``ttft_ms = a + b · prompt_tokens`` over ``requests``, with ``a >= 0``
    (a request's fixed cost cannot be negative: where the free line crosses below zero —
    prefill grows faster than linearly on long prompts — the line through the origin is
    taken): (a ms, b ms per token); None with fewer than 3 usable requests or a single
    prompt length."""
    pairs = [(r.prompt_tokens, r.ttft_ms) for r in requests if r.ttft_ms is not None]
    usable = [(float(n), float(t)) for n, t in pairs if n is not None]
    if len(usable) < 3 or len({n for n, _ in usable}) < 2:
        return None
    n, t = np.asarray(usable).T
    slope, intercept = np.polyfit(n, t, 1)
    if intercept < 0.0:
        return 0.0, float(np.dot(n, t) / np.dot(n, n))
    return float(intercept), float(slope)


def project_on(
    off: Sequence[ContextRequest], on: Sequence[ContextRequest], ms_per_token: float
) -> list[float]:
    """Each off request through ``earshot budget``'s ``prompt_cache`` lever, with the share
    of the prompt the matching on request (same block and turn) had reused and
    ``ms_per_token`` of prefill (ms per prompt token, e.g. `prefill_fit`'s slope): the
    projected TTFTs in ms, one per off request that has a matching on request."""
    by_turn = {(r.block, r.turn): r for r in on}
    out: list[float] = []
    for r in off:
        twin = by_turn.get((r.block, r.turn))
        if r.ttft_ms is None or r.prompt_tokens is None or twin is None:
            continue
        n = twin.prompt_tokens or r.prompt_tokens
        fraction = min(1.0, (twin.reused_tokens or 0) / n) if n else 0.0
        lever = parse_lever(
            f"prompt_cache={fraction:.12g},prompt_tokens={r.prompt_tokens},"
            f"prefill_ms_per_token={ms_per_token:.12g},term=llm_ttft"
        )
        state = PathState({"llm_ttft": np.asarray([r.ttft_ms], dtype=np.float64)})
        apply_lever(lever, state, SampleMode(np.random.default_rng(0), 1))
        out.append(float(state.durations["llm_ttft"][0]))
    return out


def context_arm(
    base_url: str, model: str, user_texts: Sequence[str], turns: int, seed: int
) -> ContextDoc:
    """The context lever's section of ``levers.json`` (see the module docstring).

    Returns:
        ``requests`` (every `ContextRequest`), ``comparison`` (off vs on ``llm_ttft`` in ms,
        the projection beside it), ``prefill_fit`` per arm (intercept ms, ms per prompt
        token), ``prompt_tokens`` (min/max per arm), ``reused_share_on`` (0–1),
        ``on_by_prefix`` (on-arm TTFT where the prefix was kept vs changed), ``projection``
        (the lever text and its percentiles), ``failed`` and ``errors``.

    Raises:
        RuntimeError: every request of an arm failed (the server is down or refuses them).
        ValueError: no user texts or no turns.
    """
    requests = run_context_arm(base_url, model, user_texts, turns)
    on = [r for r in requests if r.arm == "on"]
    off = [r for r in requests if r.arm == "off"]
    for arm, rs in (("on", on), ("off", off)):
        if not any(r.ttft_ms is not None for r in rs):
            raise RuntimeError(
                f"context arm: every {arm!r} request to {base_url} failed "
                f"({rs[0].error if rs else 'none sent'}); is the server up?"
            )
    fit_off, fit_on = prefill_fit(off), prefill_fit(on)
    projected = project_on(off, on, fit_off[1]) if fit_off is not None else []
    # Percentiles of a non-empty list are numbers, never None.
    projection = {f"p{q:g}": float(pct(projected, q) or 0.0) for q in QS} if projected else None
    comparison = compare(
        "llm_ttft",
        [r.ttft_ms for r in off if r.ttft_ms is not None],
        [r.ttft_ms for r in on if r.ttft_ms is not None],
        projection,
        seed,
    )
    failed = [r for r in requests if r.error]
    return {
        "lever": "context",
        "turns": turns,
        "policy": {
            "keep_turns": CONTEXT_POLICY.keep_turns,
            "fold_turns": CONTEXT_POLICY.fold_turns,
        },
        "blocks": list(BLOCKS),
        "requests": [r.to_json() for r in requests],
        "failed": len(failed),
        "errors": sorted({r.error for r in failed})[:5],
        "prompt_tokens": {
            arm: {
                "min": min((r.prompt_tokens for r in rs if r.prompt_tokens), default=None),
                "max": max((r.prompt_tokens for r in rs if r.prompt_tokens), default=None),
            }
            for arm, rs in (("off", off), ("on", on))
        },
        "reused_share_on": _mean_share(on),
        "on_by_prefix": {
            name: {"n": len(v), "p50": pct(v, 50.0), "p95": pct(v, 95.0)}
            for name, v in (
                ("kept", [r.ttft_ms for r in on if r.ttft_ms is not None and r.extended]),
                ("changed", [r.ttft_ms for r in on if r.ttft_ms is not None and not r.extended]),
            )
        },
        "prefill_fit": {
            arm: None if fit is None else {"intercept_ms": fit[0], "ms_per_token": fit[1]}
            for arm, fit in (("off", fit_off), ("on", fit_on))
        },
        "comparison": comparison.to_json(),
        "projection": None
        if fit_off is None
        else {
            "lever": "prompt_cache=F,prompt_tokens=N,prefill_ms_per_token="
            f"{fit_off[1]:.3f} per off request (F from the on arm's reused share)",
            "projected": projection,
        },
    }


def _mean_share(requests: Sequence[ContextRequest]) -> float | None:
    shares = [
        (r.reused_tokens or 0) / r.prompt_tokens
        for r in requests
        if r.prompt_tokens and r.ttft_ms is not None
    ]
    return float(np.mean(shares)) if shares else None
