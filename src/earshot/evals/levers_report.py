"""The report of `earshot eval levers`: ``levers.json``, the tables and the chart (pure).

Aggregates the per-lever trials (`earshot.evals.levers_trial.run_trial`) in plan order: each
lever's section under ``levers``, the rig's URLs per lever under ``servers``, the proxies'
counters summed over the levers' rigs under ``proxy_stats`` (one entry per replica), and the
machine's load at the first trial's start and the last trial's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

from earshot.evals.harness import Report, RunResult
from earshot.evals.latency_proxy import ProxyCounters, TailProfile
from earshot.evals.levers_model import MAX_TOKENS, TRIAL_MAX_TOKENS, LeversOptions
from earshot.evals.levers_types import (
    CacheDoc,
    ComparisonDoc,
    ContextDoc,
    LeversDoc,
    LeverSections,
    MachineDoc,
    PreemptiveDoc,
    ProjectionDoc,
    SettingsDoc,
    TrialDoc,
)


def levers_doc(opts: LeversOptions, results: Sequence[TrialDoc]) -> LeversDoc:
    """``levers.json`` from the trials' results (plan order)."""
    settings: SettingsDoc = {
        "levers": list(opts.levers),
        "trials": opts.trials,
        "quick": opts.quick,
        "seed": opts.seed,
        "max_tokens": MAX_TOKENS,
        "trial_max_tokens": TRIAL_MAX_TOKENS,
        "hedge_percentile": opts.hedge_percentile,
    }
    for r in results:
        if "utterances" in r:
            settings["utterances"] = r["utterances"]
            break
    machine: MachineDoc | None = None
    if results:
        machine = {
            "cpus": results[0]["machine"]["cpus"],
            "load_average_start": results[0]["machine"]["load_average_start"],
            "load_average_end": results[-1]["machine"]["load_average_end"],
        }
    proxy_stats: list[ProxyCounters] = []
    for r in results:
        for k, stats in enumerate(r["proxy_stats"]):
            if k == len(proxy_stats):
                proxy_stats.append(
                    {
                        "requests": 0,
                        "forwarded": 0,
                        "cancelled_in_delay": 0,
                        "cancelled_streaming": 0,
                    }
                )
            total = proxy_stats[k]
            total["requests"] += stats["requests"]
            total["forwarded"] += stats["forwarded"]
            total["cancelled_in_delay"] += stats["cancelled_in_delay"]
            total["cancelled_streaming"] += stats["cancelled_streaming"]
    levers: LeverSections = {}
    for r in results:
        section = r["result"]
        if section["lever"] == "hedge":
            levers["hedge"] = section
        elif section["lever"] == "cache":
            levers["cache"] = section
        elif section["lever"] == "preemptive":
            levers["preemptive"] = section
        else:
            levers["context"] = section
    return {
        "settings": settings,
        "injected_ttft": TailProfile().to_json(),
        "machine": machine,
        "levers": levers,
        "servers": {r["lever"]: r["servers"] for r in results},
        "proxy_stats": proxy_stats,
    }


def report(opts: LeversOptions, run: RunResult) -> Report:
    """The JSON, the tables (plain lines) and the chart of the levers done so far."""
    # The harness keeps what `run_trial` returned (or its JSON, on a resumed run or from a Ray
    # worker): the same object, typed as the generic trial result.
    doc = levers_doc(opts, cast(list[TrialDoc], run.results))
    if not doc["levers"]:
        return Report(doc=doc, exit_code=1, message="no lever was measured")
    return Report(
        doc=doc,
        lines=render_text(doc).rstrip("\n").split("\n"),
        plot=lambda path: plot_levers(path, doc),
        text_width=200,
    )


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.0f}" if signed else f"{value:.0f}"


def render_text(doc: LeversDoc) -> str:
    """The tables printed on the terminal and written to ``levers.txt``."""
    machine = doc["machine"]
    load = (machine["load_average_start"] if machine else None) or [float("nan")]
    lines = [
        "earshot eval levers",
        f"injected TTFT: {doc['injected_ttft']['name']} — {doc['injected_ttft']['source']}",
        f"machine: {machine['cpus'] if machine else None} CPUs, 1-min load average "
        f"{load[0]:.1f} at the start "
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
        rig = hedge.get("rig") or {}
        if rig:
            lines.append(
                f"rig: servers pinned to CPUs {rig.get('pinned_cpus')}, prompt cache "
                f"{'on' if rig.get('prompt_cache') else 'off'} (warmed with the "
                f"{rig.get('prompts')} prompts), {rig.get('trial_max_tokens')} token per trial"
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
                lines.append(f"{name:28} {c['num_on']:>4} {_cells(c, q)}{flag}")
            rel = c["relative_change"]["p99"]
            lines.append(
                f"{'':28} waste: {arm['extra_requests']} extra requests, "
                f"{arm['cancelled_streams']} cancelled; second request won "
                f"{arm['second_request_won']}×; p99 change "
                f"{'n/a' if rel is None else f'{rel:+.0%}'}; criterion met: "
                f"{arm['meets_criterion']}; model: --lever {arm.get('model_lever', 'hedge=2')} "
                "on the off TTFTs"
            )
        lines.append("")
    for session_arm in (doc["levers"].get("cache"), doc["levers"].get("preemptive")):
        if session_arm is not None:
            lines.extend(_session_lines(session_arm))
    context = doc["levers"].get("context")
    if context is not None:
        lines.extend(_context_lines(context))
    lines.append("'!' = the budget model's projection lies outside measured change ± spread")
    return "\n".join(lines) + "\n"


def _session_lines(arm: CacheDoc | PreemptiveDoc) -> list[str]:
    """The table and notes of a lever run through whole sessions (cache, preemptive)."""
    c = arm["comparison"]
    lines = [f"{arm['lever']} — {c['name']} (ms), off vs on, budget model beside it"]
    lines.extend(_comparison_rows(c))
    saving = ", ".join(
        f"{k} {v:+.0f}" for k, v in arm["saving_per_term_ms"].items() if abs(v) >= 0.5
    )
    lines.append(f"  mean change per term: {saving or 'none'}")
    upstream = arm.get("upstream_ttft_ms") or {}
    if upstream:
        lines.append(
            "  the real server's own TTFT (proxy log, injected delay excluded; its RAM "
            f"prompt cache {_on_off(arm.get('server_prompt_cache'))}): "
            + "; ".join(
                f"{run} p50 {_fmt(v['p50'])} p95 {_fmt(v['p95'])} ms (n={v['n']})"
                for run, v in upstream.items()
            )
        )
    lines.append(
        f"  budget model: earshot budget --from OFF --lever {_lever_of(arm['projection'])}"
    )
    if arm["lever"] == "cache":
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
            + f" — {_lever_of(arm['projection_all_turns'], simulate=False)}"
        )
        lines.append(
            f"  {arm['matched']}/{arm['turns_compared']} turns matched ({arm['stt']}); waste "
            f"{arm['preemptive']}; off llm_ttft p50 {_fmt(arm['off_llm_ttft_p50_ms'])} ms; "
            f"criterion met: {arm['meets_criterion']}"
        )
    lines.append("")
    return lines


def _lever_of(projection: ProjectionDoc | None, *, simulate: bool = True) -> str:
    """The lever a projection was run with (and why it failed, if it did)."""
    if projection is None:
        return "None"
    error = projection.get("error")
    return (
        projection["lever"]
        + (" --simulate" if simulate else "")
        + (f" — {error}" if error is not None else "")
    )


def _on_off(flag: bool | None) -> str:
    return "not recorded" if flag is None else "on" if flag else "off"


def _cells(c: ComparisonDoc, q: str) -> str:
    """One quantile of a comparison: q, off, on, change, spread, model, Δmodel (ms)."""
    return (
        f"{q:>4} {_fmt(c['off_ms'][q]):>7} {_fmt(c['on_ms'][q]):>7} "
        f"{_fmt(c['change_ms'][q], True):>8} {_fmt(c['spread_ms'][q]):>8} "
        f"{_fmt(c['projected_on_ms'][q]):>7} {_fmt(c['projected_change_ms'][q], True):>8}"
    )


def _comparison_rows(c: ComparisonDoc) -> list[str]:
    """The header and p50/p95/p99 rows of one off-vs-on comparison, model beside it."""
    lines = [
        f"{'q':>4} {'off':>7} {'on':>7} {'change':>8} {'±spread':>8} {'model':>7} "
        f"{'Δmodel':>8}   (n={c['num_on']})"
    ]
    for q in ("p50", "p95", "p99"):
        flag = " !" if c["model_disagrees"][q] else ""
        lines.append(f"{_cells(c, q)}{flag}")
    return lines


def _context_lines(arm: ContextDoc) -> list[str]:
    c = arm["comparison"]
    lines = [
        "context — llm_ttft (ms), prefix changed every request (off) vs the cache-friendly "
        "context (on), budget model beside it",
        *_comparison_rows(c),
    ]
    fits = arm["prefill_fit"]
    tokens = arm["prompt_tokens"]
    per = ", ".join(
        f"{name} {_fmt(fit['intercept_ms'])} ms + {fit['ms_per_token']:.2f} ms/token"
        if fit
        else f"{name} n/a"
        for name, fit in fits.items()
    )
    share = arm.get("reused_share_on")
    lines.append(
        f"  ttft against prompt length (least squares): {per}; prompts "
        f"{tokens['off']['min']}–{tokens['off']['max']} tokens; the on arm reused "
        f"{'n/a' if share is None else f'{share:.0%}'} of each prompt on average"
    )
    by_prefix = arm.get("on_by_prefix") or {}
    if by_prefix:
        lines.append(
            "  on arm: "
            + "; ".join(
                f"prefix {name} p50 {_fmt(v['p50'])} p95 {_fmt(v['p95'])} ms (n={v['n']})"
                for name, v in by_prefix.items()
            )
            + " — 'changed' = a call's first request, or the summary just took a folded block"
        )
    projection = arm["projection"]
    lines.append(f"  budget model: {projection['lever'] if projection else 'n/a (no prefill fit)'}")
    lines.append(
        f"  {arm['turns']} requests per call, calls {', '.join(arm['blocks'])}; server RAM "
        f"prompt cache {_on_off(arm.get('server_prompt_cache'))}; "
        f"{arm['failed']} failed"
    )
    lines.append("")
    return lines


def plot_levers(path: Path, doc: LeversDoc) -> None:
    """Grouped bars: per lever and arm, p50/p95/p99 off, on, and the model's projection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earshot.audio.io import save_figure_atomic

    groups: list[tuple[str, ComparisonDoc]] = []
    hedge = doc["levers"].get("hedge")
    if hedge is not None:
        for name, arm in hedge["arms"].items():
            if "comparison" in arm:
                groups.append((f"llm_ttft, {name}", arm["comparison"]))
    sections = doc["levers"]
    for section in (sections.get("cache"), sections.get("preemptive"), sections.get("context")):
        if section is not None:
            c = section["comparison"]
            groups.append((f"{section['lever']}: {c['name']}", c))
    fig, axes = plt.subplots(
        1, max(1, len(groups)), figsize=(5.0 * max(1, len(groups)), 4.5), squeeze=False
    )
    try:
        for ax, (title, c) in zip(axes[0], groups, strict=False):
            qs = ["p50", "p95", "p99"]
            xs = range(len(qs))
            width = 0.27
            for k, (label, by_q) in enumerate(
                (
                    ("off", c["off_ms"]),
                    ("on (measured)", c["on_ms"]),
                    ("on (budget model)", c["projected_on_ms"]),
                )
            ):
                values = [by_q[q] or 0.0 for q in qs]
                ax.bar([x + (k - 1) * width for x in xs], values, width, label=label)
            ax.set_xticks(list(xs), qs)
            ax.set_ylabel("ms")
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure_atomic(fig, path)
    finally:
        plt.close(fig)
