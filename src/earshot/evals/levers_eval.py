"""The body of `earshot eval levers`: run each lever's arms, compare, project, write outputs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np

from earshot.clock import SystemClock
from earshot.evals.latency_proxy import TailProfile
from earshot.evals.levers import MAX_TOKENS, TRIAL_MAX_TOKENS, LeversOptions
from earshot.evals.levers_runs import TtftTrial, ttft_trials
from earshot.evals.levers_session import cache_arm, preemptive_arm
from earshot.evals.levers_stats import Comparison, compare, pct, project_hedged_ttft
from earshot.evals.llm_rig import LlmRig
from earshot.evals.outputs import write_eval_outputs
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
        print(f"  {text}", flush=True)


def evaluate(opts: LeversOptions) -> tuple[dict[str, Any], str]:
    """Run the chosen levers; write ``levers.json``/``.txt``/``.png``; return (doc, text).

    Raises:
        RigError: the LLM servers cannot be started or reached.
        ValueError: bad data or options.
    """
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    profile = TailProfile()
    doc: dict[str, Any] = {
        "settings": {
            "levers": list(opts.levers),
            "trials": opts.trials,
            "quick": opts.quick,
            "seed": opts.seed,
            "max_tokens": MAX_TOKENS,
            "trial_max_tokens": TRIAL_MAX_TOKENS,
            "hedge_percentile": opts.hedge_percentile,
        },
        "injected_ttft": profile.to_json(),
        "machine": {"cpus": os.cpu_count(), "load_average_start": list(os.getloadavg())},
        "levers": {},
    }
    rig = LlmRig(
        replicas=2,
        profile=profile,
        seed=opts.seed,
        base_urls=opts.base_urls or None,
        log_dir=opts.out_dir / "servers",
    )
    with rig.running():
        doc["servers"] = {"upstreams": rig.upstream_urls, "proxies": rig.proxy_urls}
        if "hedge" in opts.levers:
            doc["levers"]["hedge"] = _hedge(opts, rig)
        session_levers = [x for x in ("cache", "preemptive") if x in opts.levers]
        if session_levers:
            paths = caller_paths(opts)
            llm = _client(rig.proxy_urls[0], opts.model, SystemClock())
            doc["settings"]["utterances"] = [p.name for p in paths]
            if "cache" in opts.levers:
                _progress(opts, "cache: the callers twice, off then on")
                doc["levers"]["cache"] = cache_arm(
                    opts.out_dir, paths, llm, opts.seed, CACHE_WORD_DISTANCE
                )
            if "preemptive" in opts.levers:
                _progress(opts, "preemptive: the callers, off then on")
                doc["levers"]["preemptive"] = preemptive_arm(
                    opts.out_dir, paths, llm, opts.seed, opts.stable_ms
                )
        doc["proxy_stats"] = [p.stats.to_json() for p in rig.proxies]
    doc["machine"]["load_average_end"] = list(os.getloadavg())
    text = render_text(doc)
    write_eval_outputs(opts.out_dir, "levers", doc, text, lambda path: plot_levers(path, doc))
    return doc, text


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


def _hedge(opts: LeversOptions, rig: LlmRig) -> dict[str, Any]:
    clock = SystemClock()
    a, b = rig.proxy_urls[0], rig.proxy_urls[1]
    single = _client(a, opts.model, clock, TRIAL_MAX_TOKENS)
    hedged = HedgedLLM(
        [
            _client(a, opts.model, clock, TRIAL_MAX_TOKENS),
            _client(b, opts.model, clock, TRIAL_MAX_TOKENS),
        ],
        clock,
    )
    delayed = HedgedLLM(
        [
            _client(a, opts.model, clock, TRIAL_MAX_TOKENS),
            _client(b, opts.model, clock, TRIAL_MAX_TOKENS),
        ],
        clock,
        HedgeConfig(2, delay_ms=TailProfile().body_p90_ms, percentile=opts.hedge_percentile),
    )
    # The servers' own first-token time, straight to each upstream (no injected delay): how
    # heavy their own tail is, and how much the two replicas' slowness moves together.
    direct = {
        f"upstream {k}": _client(url, opts.model, clock, TRIAL_MAX_TOKENS)
        for k, url in zip("ab", rig.upstream_urls[:2], strict=True)
    }
    arms: dict[str, LanguageModel] = {
        "off": single,
        "hedge=2": hedged,
        f"hedge=2 delayed p{opts.hedge_percentile:g}": delayed,
        **direct,
    }

    def progress(i: int) -> None:
        if not opts.quiet and (i % 10 == 0 or i == opts.trials):
            print(f"  hedge: {i}/{opts.trials} prompts through {len(arms)} arms", flush=True)

    async def main() -> dict[str, list[TtftTrial]]:
        try:
            return await ttft_trials(
                arms, caller_prompts(opts), clock, opts.trials, on_trial=progress
            )
        finally:
            await single.aclose()
            await hedged.aclose()
            await delayed.aclose()
            for client in direct.values():
                await client.aclose()

    results = asyncio.run(main())
    off = [t.ttft_ms for t in results["off"] if t.ttft_ms is not None]
    out: dict[str, Any] = {"arms": {}, "criterion": "llm_ttft p99 cut >= 30 % at no worse p50"}
    out["upstream"] = _upstream_tail(results["upstream a"], results["upstream b"])
    for name, trials in results.items():
        if name.startswith("upstream"):
            continue
        ttfts = [t.ttft_ms for t in trials if t.ttft_ms is not None]
        hedges: list[dict[str, Any]] = [
            t.notes["llm_hedge"] for t in trials if "llm_hedge" in t.notes
        ]
        sent = sum(h["requests_sent"] for h in hedges) if hedges else len(trials)
        arm: dict[str, Any] = {
            "requests": len(trials),
            "failed": sum(1 for t in trials if t.ttft_ms is None),
            "requests_sent": sent,
            "extra_requests": sent - len(trials),
            "cancelled_streams": sum(h["cancelled"] for h in hedges),
            "second_request_won": sum(1 for h in hedges if h["winner"] == 1),
            "ttft_ms": ttfts,
        }
        if name != "off":
            comparison = compare(
                "llm_ttft", off, ttfts, project_hedged_ttft(off, 2, opts.seed), opts.seed
            )
            arm["comparison"] = comparison.to_json()
            arm["meets_criterion"] = _meets(comparison)
        out["arms"][name] = arm
    return out


def _upstream_tail(a: list[TtftTrial], b: list[TtftTrial]) -> dict[str, Any]:
    """Percentiles of each server's own TTFT and the correlation of the two on the same trial
    (hedging assumes independent replicas: the closer to 1, the less it can cut)."""
    pairs = [
        (x.ttft_ms, y.ttft_ms)
        for x, y in zip(a, b, strict=True)
        if x.ttft_ms is not None and y.ttft_ms is not None
    ]
    out: dict[str, Any] = {}
    for name, trials in (("a", a), ("b", b)):
        values = [t.ttft_ms for t in trials if t.ttft_ms is not None]
        out[name] = {f"p{q:g}": pct(values, q) for q in (50.0, 95.0, 99.0)}
    if len(pairs) >= 3:
        xs = np.array(pairs, dtype=np.float64)
        out["correlation"] = float(np.corrcoef(xs[:, 0], xs[:, 1])[0, 1])
    else:
        out["correlation"] = None
    return out


def _meets(c: Comparison) -> bool | None:
    p99, p50 = c.relative_change("p99"), c.change_ms.get("p50")
    if p99 is None or p50 is None:
        return None
    return p99 <= HEDGE_CRITERION and p50 <= 0.0


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.0f}" if signed else f"{value:.0f}"


def render_text(doc: dict[str, Any]) -> str:
    """The tables printed on the terminal and written to ``levers.txt``."""
    machine = doc.get("machine", {})
    load = machine.get("load_average_start") or [float("nan")]
    lines = [
        "earshot eval levers",
        f"injected TTFT: {doc['injected_ttft']['name']} — {doc['injected_ttft']['source']}",
        f"machine: {machine.get('cpus')} CPUs, 1-min load average {load[0]:.1f} at the start "
        "(the real server's own TTFT moves with it)",
        "",
    ]
    hedge = doc["levers"].get("hedge")
    if hedge is not None:
        up = hedge.get("upstream") or {}
        if up:
            corr = up.get("correlation")
            lines.append(
                "the real servers' own TTFT (no injected delay): "
                + "; ".join(
                    f"{k} p50/p95/p99 {_fmt(up[k]['p50'])}/{_fmt(up[k]['p95'])}/"
                    f"{_fmt(up[k]['p99'])} ms"
                    for k in ("a", "b")
                )
                + f"; correlation a–b {'n/a' if corr is None else f'{corr:.2f}'}"
            )
        lines.append("hedge — llm_ttft (ms): off vs on, measured change ± spread, budget model")
        header = (
            f"{'arm':28} {'n':>4} {'q':>4} {'off':>7} {'on':>7} {'change':>8} {'±spread':>8} "
            f"{'model':>7} {'Δmodel':>8}"
        )
        lines.append(header)
        for name, arm in hedge["arms"].items():
            c = arm.get("comparison")
            if c is None:
                continue
            for q in ("p50", "p95", "p99"):
                flag = " !" if c["model_disagrees"][q] else ""
                lines.append(
                    f"{name:28} {c['num_on']:>4} {q:>4} {_fmt(c['off_ms'][q]):>7} "
                    f"{_fmt(c['on_ms'][q]):>7} {_fmt(c['change_ms'][q], True):>8} "
                    f"{_fmt(c['spread_ms'][q]):>8} {_fmt(c['projected_on_ms'][q]):>7} "
                    f"{_fmt(c['projected_change_ms'][q], True):>8}{flag}"
                )
            rel = c["relative_change"]["p99"]
            lines.append(
                f"{'':28} waste: {arm['extra_requests']} extra requests, "
                f"{arm['cancelled_streams']} cancelled; second request won "
                f"{arm['second_request_won']}×; p99 change "
                f"{'n/a' if rel is None else f'{rel:+.0%}'}; criterion met: "
                f"{arm['meets_criterion']}"
            )
        lines.append("")
    for name in ("cache", "preemptive"):
        arm = doc["levers"].get(name)
        if arm is None:
            continue
        c = arm["comparison"]
        lines.append(f"{name} — {c['name']} (ms), off vs on, budget model beside it")
        lines.append(
            f"{'q':>4} {'off':>7} {'on':>7} {'change':>8} {'±spread':>8} {'model':>7} "
            f"{'Δmodel':>8}   (n={c['num_on']})"
        )
        for q in ("p50", "p95", "p99"):
            flag = " !" if c["model_disagrees"][q] else ""
            lines.append(
                f"{q:>4} {_fmt(c['off_ms'][q]):>7} {_fmt(c['on_ms'][q]):>7} "
                f"{_fmt(c['change_ms'][q], True):>8} {_fmt(c['spread_ms'][q]):>8} "
                f"{_fmt(c['projected_on_ms'][q]):>7} {_fmt(c['projected_change_ms'][q], True):>8}"
                f"{flag}"
            )
        saving = ", ".join(
            f"{k} {v:+.0f}" for k, v in arm["saving_per_term_ms"].items() if abs(v) >= 0.5
        )
        lines.append(f"  mean change per term: {saving or 'none'}")
        projection = arm.get("projection") or {}
        lines.append(
            f"  budget model: earshot budget --from OFF --lever {projection.get('lever')}"
            f" --simulate{' — ' + projection['error'] if 'error' in projection else ''}"
        )
        if name == "cache":
            lines.append(
                f"  hit rate {arm['hit_rate']:.0%} on {arm['turns_compared']} repeat turns; "
                f"{arm['cache']}; hit TTFAT = endpointing + jitter buffer only: "
                f"{arm['hit_ttfat_is_endpointing_plus_jitter_only']}"
            )
        else:
            every = arm["comparison_all_turns"]
            lines.append(
                "  all turns (restarts included): "
                + ", ".join(
                    f"{q} {_fmt(every['off_ms'][q])} → {_fmt(every['on_ms'][q])} "
                    f"(model {_fmt(every['projected_on_ms'][q])})"
                    for q in ("p50", "p95", "p99")
                )
                + f" — {(arm.get('projection_all_turns') or {}).get('lever')}"
            )
            lines.append(
                f"  {arm['matched']}/{arm['turns_compared']} turns matched; waste "
                f"{arm['preemptive']}; off llm_ttft p50 {_fmt(arm['off_llm_ttft_p50_ms'])} ms; "
                f"criterion met: {arm['meets_criterion']}"
            )
        lines.append("")
    lines.append("'!' = the budget model's projection lies outside measured change ± spread")
    return "\n".join(lines) + "\n"


def plot_levers(path: Any, doc: dict[str, Any]) -> None:
    """Grouped bars: per lever and arm, p50/p95/p99 off, on, and the model's projection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earshot.audio.io import save_figure_atomic

    groups: list[tuple[str, dict[str, Any]]] = []
    hedge = doc["levers"].get("hedge")
    if hedge is not None:
        for name, arm in hedge["arms"].items():
            if "comparison" in arm:
                groups.append((f"llm_ttft, {name}", arm["comparison"]))
    for name in ("cache", "preemptive"):
        arm = doc["levers"].get(name)
        if arm is not None:
            groups.append((f"{name}: {arm['comparison']['name']}", arm["comparison"]))
    fig, axes = plt.subplots(
        1, max(1, len(groups)), figsize=(5.0 * max(1, len(groups)), 4.5), squeeze=False
    )
    try:
        for ax, (title, c) in zip(axes[0], groups, strict=False):
            qs = ["p50", "p95", "p99"]
            xs = range(len(qs))
            width = 0.27
            for k, (label, key) in enumerate(
                (
                    ("off", "off_ms"),
                    ("on (measured)", "on_ms"),
                    ("on (budget model)", "projected_on_ms"),
                )
            ):
                values = [c[key][q] or 0.0 for q in qs]
                ax.bar([x + (k - 1) * width for x in xs], values, width, label=label)
            ax.set_xticks(list(xs), qs)
            ax.set_ylabel("ms")
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure_atomic(fig, path)
    finally:
        plt.close(fig)
