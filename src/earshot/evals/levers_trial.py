"""One trial of `earshot eval levers`: one lever's arms against their own LLM rig.

`run_trial` starts the rig (`earshot.evals.llm_rig`: servers and latency proxies, seeded by
the trial's seed), runs the lever's arms, compares them (`earshot.evals.levers_stats`) and
returns plain JSON; `earshot.evals.levers_report` aggregates the trials.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from earshot.audio.io import write_text_atomic
from earshot.clock import SystemClock
from earshot.evals.harness import Trial
from earshot.evals.latency_proxy import TailProfile
from earshot.evals.levers_context import CONTEXT_TURNS, QUICK_CONTEXT_TURNS, context_arm
from earshot.evals.levers_model import MAX_TOKENS, TRIAL_MAX_TOKENS, LeversOptions, LeverTrial
from earshot.evals.levers_runs import TtftTrial, ttft_trials
from earshot.evals.levers_session import cache_arm, preemptive_arm
from earshot.evals.levers_stats import Comparison, compare, pct, project_hedged_ttft
from earshot.evals.levers_types import (
    CacheDoc,
    HedgeArmDoc,
    HedgeDoc,
    LeverDoc,
    PreemptiveDoc,
    ServersDoc,
    TrialDoc,
    TtftSummary,
    UpstreamTailDoc,
)
from earshot.evals.llm_rig import LlmRig, away_from
from earshot.levers.hedge import HedgeConfig, HedgedLLM
from earshot.llm.base import LanguageModel
from earshot.llm.openai_compat import LlmTimeouts, OpenAICompatLLM

CACHE_WORD_DISTANCE = 0.4
"""The eval's cache tolerance (`ResponseCache.max_word_distance`): pocketsphinx does not
transcribe a recording the same way twice in one session (its normalisation adapts)."""

HEDGE_CRITERION = -0.30
"""Done-when of issue 13: hedging with N=2 cuts ``llm_ttft`` p99 by at least 30 %."""


def caller_prompts(opts: LeversOptions) -> list[str]:
    """The recorded callers' reference transcripts (the LLM prompts of the TTFT trials)."""
    from earshot.evals.latency_plan import load_manifest
    from earshot.evals.manifest import bundled_data_dir

    utterances = load_manifest(opts.data_dir or bundled_data_dir())
    prompts = [u.transcript for u in utterances if u.transcript.strip()]
    if not prompts:
        raise ValueError("the recordings' manifest has no transcripts to use as prompts")
    return prompts


def caller_paths(opts: LeversOptions) -> list[Path]:
    """The first ``n_utterances`` recorded callers (manifest order, sorted by path)."""
    from earshot.evals.latency_plan import load_manifest
    from earshot.evals.manifest import bundled_data_dir

    utterances = load_manifest(opts.data_dir or bundled_data_dir())
    return [u.path for u in utterances[: opts.n_utterances]]


def _progress(opts: LeversOptions, text: str) -> None:
    if not opts.quiet:
        print(f"  {text}", file=sys.stderr, flush=True)


SESSION_PROMPT_CACHE = False
"""The RAM prompt cache (``--cache``) of the session arms' server: off. A call's requests
extend one another, so llama.cpp's own prefix match on its live context already reuses the
prefill; the RAM cache adds a copy of the whole KV state after every reply and, whenever a
stored state matches more of a prompt than the live context does, a copy back in. Measured
with timestamps inside the server (`preemptive`, 8 shared recordings, load ≈ 0): that load
took 60–990 ms before the first token, and it struck the speculative requests (and every
request of the "on" run, whose prompts the "off" run had stored), so the runs compared the
cache's copy costs, not the lever. A hosted provider's prefix cache has no such per-request
copy."""


def run_trial(opts: LeversOptions, trial: Trial[LeverTrial]) -> TrialDoc:
    """Run one lever's arms against a rig of its own; the lever's results, JSON-able.

    Returns:
        ``lever``, ``result`` (the lever's section of ``levers.json``), ``servers`` (the
        rig's URLs), ``proxy_stats`` (per proxy), ``utterances`` (session levers: the
        callers' file names) and ``machine`` (CPUs, 1-min load average at start and end).

    Raises:
        RigError: the LLM servers cannot be started or reached.
        ValueError: bad data or options.
    """
    lever = trial.params.lever
    load_start = list(os.getloadavg())
    rig = LlmRig(
        replicas=2 if lever == "hedge" else 1,
        profile=TailProfile(),
        seed=trial.seed,
        base_urls=opts.base_urls or None,
        log_dir=opts.out_dir / "servers",
        # The session arms run on the server's live context alone (see `SESSION_PROMPT_CACHE`).
        prompt_cache=True if lever == "hedge" else SESSION_PROMPT_CACHE,
    )
    utterances: list[str] | None = None
    session_cpus: list[int] | None = None
    with rig.running():
        servers: ServersDoc = {"upstreams": rig.upstream_urls, "proxies": rig.proxy_urls}
        result: LeverDoc
        if lever == "hedge":
            result = _hedge(opts, rig, trial.seed)
        elif lever == "context":
            _progress(opts, "context: whole calls, the prefix stable (on) and changed (off)")
            turns = QUICK_CONTEXT_TURNS if opts.quick else CONTEXT_TURNS
            # Straight to the server: the prefill is the term measured, no injected delay.
            context = context_arm(
                rig.upstream_urls[0], opts.model, caller_prompts(opts), turns, trial.seed
            )
            # Only a server the rig started has a known cache setting.
            context["server_prompt_cache"] = None if opts.base_urls else rig.prompt_cache
            result = context
        else:
            result, utterances, session_cpus = _session_lever(opts, rig, lever, trial.seed)
        proxy_stats = [p.stats.to_json() for p in rig.proxies]
        _write_proxy_logs(opts.out_dir / "servers", lever, rig)
    out: TrialDoc = {
        "lever": lever,
        "servers": servers,
        "result": result,
        "proxy_stats": proxy_stats,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
        },
    }
    if utterances is not None:
        out["utterances"] = utterances
    if session_cpus is not None:
        out["session_cpus"] = session_cpus
    return out


def _session_lever(
    opts: LeversOptions,
    rig: LlmRig,
    lever: str,
    seed: int,
) -> tuple[CacheDoc | PreemptiveDoc, list[str], list[int]]:
    """The cache or preemptive arms: the recorded callers through whole sessions on the rig's
    one replica, the session's own compute kept off the server's core (`away_from`).

    Returns:
        The lever's section, the callers' file names, and the CPUs the session ran on.
    """
    paths = caller_paths(opts)
    llm = _client(rig.proxy_urls[0], opts.model, SystemClock())

    def label(run: str) -> None:
        for proxy in rig.proxies:
            proxy.label = run

    result: CacheDoc | PreemptiveDoc
    with away_from(rig.pinned) as cpus:
        if lever == "cache":
            _progress(opts, "cache: the callers twice, off then on")
            result = cache_arm(opts.out_dir, paths, llm, seed, CACHE_WORD_DISTANCE, label)
        else:
            _progress(opts, "preemptive: the callers, off then on")
            result = preemptive_arm(opts.out_dir, paths, llm, seed, opts.stable_ms, label)
    result["upstream_ttft_ms"] = _upstream_ttft(rig)
    # Only a server the rig started has a known cache setting.
    result["server_prompt_cache"] = None if opts.base_urls else rig.prompt_cache
    return result, [p.name for p in paths], list(cpus)


def _write_proxy_logs(directory: Path, lever: str, rig: LlmRig) -> None:
    """``servers/proxy-<lever>-<k>.requests.jsonl``: every request proxy k of this lever's
    rig saw (`ProxyRequest`), one JSON line each."""
    for k, proxy in enumerate(rig.proxies):
        lines = [json.dumps(r.to_json(), allow_nan=False) for r in proxy.stats.log]
        path = directory / f"proxy-{lever}-{k}.requests.jsonl"
        write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


def _upstream_ttft(rig: LlmRig) -> dict[str, TtftSummary]:
    """Per run (proxy label): the real server's own TTFT from the proxy's log (n, p50, p95):
    what the runs' servers did, apart from the injected delay and the lever."""
    by_run: dict[str, list[float]] = {}
    for proxy in rig.proxies:
        for request in proxy.stats.log:
            if request.upstream_ttft_ms is not None and request.label:
                by_run.setdefault(request.label, []).append(request.upstream_ttft_ms)
    return {
        run: {"n": len(v), "p50": pct(v, 50.0), "p95": pct(v, 95.0)} for run, v in by_run.items()
    }


def _client(
    url: str, model: str, clock: SystemClock, max_tokens: int = MAX_TOKENS
) -> OpenAICompatLLM:
    return OpenAICompatLLM(
        url,
        model,
        clock,
        max_tokens=max_tokens,
        temperature=0.0,
        timeouts=LlmTimeouts(first_token_ms=15_000.0),
    )


def _hedge(opts: LeversOptions, rig: LlmRig, seed: int) -> HedgeDoc:
    clock = SystemClock()
    a, b = rig.proxy_urls[0], rig.proxy_urls[1]
    prompts = caller_prompts(opts)
    rig.warm(prompts)

    def client(url: str) -> OpenAICompatLLM:
        return _client(url, opts.model, clock, TRIAL_MAX_TOKENS)

    delayed_config = HedgeConfig(
        2, delay_ms=TailProfile().body_p90_ms, percentile=opts.hedge_percentile
    )
    # Hedge to a list of backends (the two replicas), to the same backend twice (independent
    # draws of the proxy, one server), and the delayed hedge to the list.
    arms: dict[str, LanguageModel] = {
        "off": client(a),
        "hedge=2": HedgedLLM([client(a), client(b)], clock),
        "hedge=2 same backend": HedgedLLM([client(a)], clock, HedgeConfig(2)),
        f"hedge=2 delayed p{opts.hedge_percentile:g}": HedgedLLM(
            [client(a), client(b)], clock, delayed_config
        ),
    }
    # The servers' own first-token time, straight to each upstream (no injected delay): how
    # heavy their own tail is, and how much the two replicas' slowness moves together.
    for k, url in zip("ab", rig.upstream_urls[:2], strict=True):
        arms[f"upstream {k}"] = client(url)

    def progress(i: int) -> None:
        if not opts.quiet and (i % 25 == 0 or i == opts.trials):
            print(
                f"  hedge: {i}/{opts.trials} prompts through {len(arms)} arms",
                file=sys.stderr,
                flush=True,
            )

    async def main() -> dict[str, list[TtftTrial]]:
        try:
            return await ttft_trials(arms, prompts, clock, opts.trials, on_trial=progress)
        finally:
            for arm in arms.values():
                closer = getattr(arm, "aclose", None)
                if closer is not None:
                    await closer()

    results = asyncio.run(main())
    off = [t.ttft_ms for t in results["off"] if t.ttft_ms is not None]
    out: HedgeDoc = {
        "lever": "hedge",
        "arms": {},
        "criterion": "llm_ttft p99 cut >= 30 % at no worse p50",
        "upstream": _upstream_tail(results["upstream a"], results["upstream b"]),
        "rig": {
            "pinned_cpus": list(rig.pinned),
            "prompt_cache": rig.prompt_cache,
            "trial_max_tokens": TRIAL_MAX_TOKENS,
            "prompts": len(prompts),
        },
    }
    baseline = project_hedged_ttft(off, 1, seed)  # the same resampled draws, one request
    for name, trials in results.items():
        if name.startswith("upstream"):
            continue
        # The model is fed what was measured: the off TTFTs and, for a deferred hedge, the
        # delay its races used (median; it follows the measured percentile as it learns).
        delays = [t.notes["llm_hedge"]["delay_ms"] for t in trials if "llm_hedge" in t.notes]
        delay_ms = float(np.median(delays)) if delays else 0.0
        projection = project_hedged_ttft(off, 2, seed, delay_ms)
        model_lever = f"hedge=2,delay_ms={delay_ms:.0f}" if delay_ms > 0 else "hedge=2"
        out["arms"][name] = _hedge_arm(name, trials, off, projection, baseline, seed, model_lever)
    return out


def _hedge_arm(
    name: str,
    trials: list[TtftTrial],
    off: list[float],
    projection: dict[str, float],
    baseline: dict[str, float],
    seed: int,
    model_lever: str,
) -> HedgeArmDoc:
    """One hedging arm: its TTFTs, its waste, and (not for ``off``) the comparison with the
    budget model's hedge rule fed the measured off TTFTs."""
    ttfts = [t.ttft_ms for t in trials if t.ttft_ms is not None]
    hedges: list[dict[str, Any]] = [t.notes["llm_hedge"] for t in trials if "llm_hedge" in t.notes]
    sent = sum(h["requests_sent"] for h in hedges) if hedges else len(trials)
    arm: HedgeArmDoc = {
        "requests": len(trials),
        "failed": sum(1 for t in trials if t.ttft_ms is None),
        "requests_sent": sent,
        "extra_requests": sent - len(trials),
        "cancelled_streams": sum(h["cancelled"] for h in hedges),
        "second_request_won": sum(1 for h in hedges if h["winner"] == 1),
        "ttft_ms": ttfts,
        "model_lever": model_lever,
    }
    if name != "off":
        comparison = compare("llm_ttft", off, ttfts, projection, seed, baseline)
        arm["comparison"] = comparison.to_json()
        arm["meets_criterion"] = _meets(comparison)
    return arm


def _upstream_tail(a: list[TtftTrial], b: list[TtftTrial]) -> UpstreamTailDoc:
    """Percentiles of each server's own TTFT and the correlation of the two on the same trial
    (hedging assumes independent replicas: the closer to 1, the less it can cut)."""
    pairs = [
        (x.ttft_ms, y.ttft_ms)
        for x, y in zip(a, b, strict=True)
        if x.ttft_ms is not None and y.ttft_ms is not None
    ]

    def tail(trials: list[TtftTrial]) -> dict[str, float | None]:
        values = [t.ttft_ms for t in trials if t.ttft_ms is not None]
        return {f"p{q:g}": pct(values, q) for q in (50.0, 95.0, 99.0)}

    correlation: float | None = None
    if len(pairs) >= 3:
        xs = np.array(pairs, dtype=np.float64)
        correlation = float(np.corrcoef(xs[:, 0], xs[:, 1])[0, 1])
    return {"a": tail(a), "b": tail(b), "correlation": correlation}


def _meets(c: Comparison) -> bool | None:
    p99, p50 = c.relative_change("p99"), c.change_ms.get("p50")
    if p99 is None or p50 is None:
        return None
    return p99 <= HEDGE_CRITERION and p50 <= 0.0
