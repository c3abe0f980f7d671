"""Levers: each changes named TTFAT terms by a stated, cited rule.

A lever is written ``NAME[=VALUE][,KEY=VALUE...]`` (e.g. ``vad_silence=300``,
``codec=opus10,from=opus20``, ``spec_decode,alpha=0.7,gamma=4``); `LEVERS` lists them with
their parameters and sources, and `apply_lever` applies one to a `PathState`.

Levers act on arrays through a `Mode`, so one rule serves both evaluations:

* `BoundsMode` — arrays ``[best case, worst case]``. A published range used by a lever is a
  bound too: the best case takes the lowest latency it allows (the smaller added cost, the larger
  saving). Setting a term sets it exactly.
* samples mode (`earshot.budget.montecarlo.SampleMode`) — arrays of Monte Carlo draws. A lever
  that sets a term moves its distribution: additive terms (silence threshold, jitter buffer,
  round trip) shift by the new value minus the baseline median; service times (model choice)
  scale by the new value over the baseline median, keeping the tail's shape. A published range is
  read as its midpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from earshot.budget.dists import expected_tokens_per_step, speculative_speedup
from earshot.budget.lever_base import (
    BoundsMode,
    LeverDef,
    LeverError,
    LeverSpec,
    Mode,
    PathState,
    as_integer,
    as_number,
    have,
    lever_data,
    range_of,
    scale_to,
    shift_to,
    targets,
)
from earshot.budget.model import Overlap

__all__ = [
    "LEVERS",
    "BoundsMode",
    "LeverDef",
    "LeverError",
    "LeverSpec",
    "Mode",
    "PathState",
    "apply_lever",
    "lever_data",
    "parse_lever",
]


def parse_lever(text: str) -> LeverSpec:
    """Parse ``NAME[=VALUE][,KEY=VALUE...]``.

    Raises:
        LeverError: empty text, an unknown lever, a parameter the lever does not take, or a
            missing value.
    """
    parts = [p.strip() for p in text.split(",")]
    head, _, value = parts[0].partition("=")
    name = head.strip()
    if name not in LEVERS:
        raise LeverError(f"unknown lever {name!r} in {text!r}; levers: {', '.join(LEVERS)}")
    definition = LEVERS[name]
    params: list[tuple[str, str]] = []
    for part in parts[1:]:
        key, eq, val = part.partition("=")
        if not eq or not key or not val:
            raise LeverError(f"{text!r}: {part!r} is not KEY=VALUE; usage: {definition.usage}")
        if key not in definition.params:
            allowed = ", ".join(definition.params) or "none"
            raise LeverError(
                f"{text!r}: lever {name!r} takes no parameter {key!r} (takes: {allowed})"
            )
        params.append((key, val))
    if definition.needs_value and not value:
        raise LeverError(f"{text!r}: lever {name!r} needs a value; usage: {definition.usage}")
    return LeverSpec(name, value or None, tuple(params), text)


def _vad_silence(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    term = targets(spec, state, ("endpointing",))
    new_ms = as_number(spec, spec.value, "the silence threshold (ms)")
    x = state.durations[term]
    old = (
        mode.reference(x) if spec.get("from") is None else as_number(spec, spec.get("from"), "from")
    )
    state.durations[term] = np.maximum(0.0, x + (new_ms - old))
    return [
        "End-of-turn time moves 1:1 with the silence threshold (600 → 300 ms saves 300 ms) at the "
        "cost of false interruptions; production uses 400–600 ms with adaptive tuning (§39.4.3)."
    ]


def _endpointing(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    kinds = lever_data()["endpointing"]
    kind = spec.value or ""
    if kind not in kinds:
        raise LeverError(f"{spec.text!r}: endpointing is one of {', '.join(kinds)}")
    term = targets(spec, state, ("endpointing",))
    x = state.durations[term]
    entry = kinds[kind]
    if "cap_ms" in entry:
        state.durations[term] = np.minimum(x, float(entry["cap_ms"]))
    else:
        state.durations[term] = np.maximum(0.0, x - float(entry["saving_ms"]))
    return [f"{entry['label']} ({entry['cite']})."]


def _codec(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    codecs = lever_data()["codecs"]
    new, old = spec.value or "", spec.get("from") or "opus20"
    for name in (new, old):
        if name not in codecs:
            raise LeverError(f"{spec.text!r}: codec {name!r} is not one of {', '.join(codecs)}")
    term = targets(spec, state, ("codec", "network_in", "network", "transport"))
    delta = float(codecs[new]["added_ms"]) - float(codecs[old]["added_ms"])
    state.durations[term] = np.maximum(0.0, state.durations[term] + delta)
    notes = [
        f"{codecs[old]['label']} → {codecs[new]['label']}: {delta:+g} ms on {term}, bitrate "
        f"{_span(codecs[old]['bitrate_kbps'])} → {_span(codecs[new]['bitrate_kbps'])} kbps "
        "(§39.4.4 codec table)."
    ]
    if spec.get("from") is None:
        notes.append("Baseline codec assumed Opus 20 ms (not published); set it with from=NAME.")
    return notes


def _span(value: Any) -> str:
    """``[3, 6]`` → '3–6'; ``32`` → '32'."""
    low, high = range_of(value)
    return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def _jitter_buffer(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    term = targets(spec, state, ("jitter_buffer",))
    target = np.float64(as_number(spec, spec.value, "the jitter buffer depth (ms)"))
    shift_to(state, term, np.asarray(target), mode)
    return [
        "A shallower buffer underruns more often on a jittery network (typical 80 ms, best "
        "40 ms, §39.4.2 Table 39.4.2a)."
    ]


def _prompt_cache(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    fraction = as_number(spec, spec.value, "the cached fraction")
    if fraction > 1:
        raise LeverError(f"{spec.text!r}: the cached fraction must lie in [0, 1]")
    term = targets(spec, state, ("prompt", "llm_ttft", "llm", "first_token"))
    x = state.durations[term]
    tokens, per_token = spec.get("prompt_tokens"), spec.get("prefill_ms_per_token")
    if tokens is not None or per_token is not None:
        prefill_ms = as_number(spec, tokens, "prompt_tokens") * as_number(
            spec, per_token, "prefill_ms_per_token"
        )
        saving = fraction * prefill_ms
        state.durations[term] = np.maximum(0.0, x - saving)
        note = (
            f"Prefill = prompt tokens × per-token time = {prefill_ms:g} ms; caching "
            f"{fraction:.0%} of it saves {saving:g} ms on {term}."
        )
    elif term == "prompt":
        state.durations[term] = x * (1.0 - fraction)
        note = f"Prefill is linear in uncached tokens: {term} × (1 − {fraction:g})."
    else:
        raise LeverError(
            f"{spec.text!r}: {term} folds prefill in with the rest of the first token's time; "
            "say how much is prefill with prompt_tokens=N,prefill_ms_per_token=MS"
        )
    return [
        note,
        "Prompt caching drops t_prompt to single-digit ms from ~100 ms on long prompts (§39.4).",
    ]


def _rtt(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    rtt_ms = as_number(spec, spec.value, "the round-trip time (ms)")
    if spec.get("term") is not None:
        pairs = [(targets(spec, state, ()), rtt_ms)]
    else:
        pairs = [(t, rtt_ms / 2) for t in ("network_in", "network_out") if t in state.durations]
        pairs += [("network", rtt_ms)] if "network" in state.durations else []
    if not pairs:
        raise LeverError(
            f"{spec.text!r} acts on network_in/network_out or network, and this budget has none "
            f"({have(state)}); name the round-trip term with term=NAME"
        )
    for term, target in pairs:
        shift_to(state, term, np.asarray(np.float64(target)), mode)
    return [
        "Geographic routing moves the network terms (Table 39.4.2a); PSTN adds 150–700 ms, "
        "WebRTC 20–50 ms (T. Pan)."
    ]


def _model(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    models = lever_data()["models"]
    if spec.value not in models:
        raise LeverError(
            f"{spec.text!r}: model is one of {', '.join(models)}; or give ttft=MS directly"
        )
    entry = models[spec.value]
    term = targets(spec, state, ("llm_ttft",))
    scale_to(state, term, mode.bound(*range_of(entry["ttft_ms"])), mode)
    return [f"{entry['label']}: TTFT {_span(entry['ttft_ms'])} ms ({entry['cite']})."]


def _ttft(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    term = targets(spec, state, ("llm_ttft", "first_token"))
    target = np.asarray(np.float64(as_number(spec, spec.value, "the time to first token (ms)")))
    scale_to(state, term, target, mode)
    return [f"{term} set by model choice (T. Pan lists provider TTFTs from 50 to ~700 ms)."]


def _spec_decode(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    example = lever_data()["speculative_example"]
    alpha = as_number(spec, spec.get("alpha") or str(example["alpha"]), "alpha")
    gamma = as_integer(spec, spec.get("gamma") or str(example["gamma"]), "gamma", minimum=1)
    ratio = as_number(
        spec, spec.get("draft_cost") or str(example["draft_cost_ratio"]), "draft_cost"
    )
    tokens_text = spec.get("tokens")
    tokens = None if tokens_text is None else as_integer(spec, tokens_text, "tokens", minimum=1)
    if alpha > 1:
        raise LeverError(f"{spec.text!r}: alpha is an acceptance rate in [0, 1]")
    term = targets(spec, state, ("first_token", "sentence_aggregation"))
    state.durations[term] = mode.speculative(state.durations[term], alpha, gamma, ratio, tokens)
    e_tokens = expected_tokens_per_step(alpha, gamma)
    speedup = speculative_speedup(alpha, gamma, ratio)
    notes = [
        f"E[tokens/step] = (1 − α^(γ+1))/(1 − α) = {e_tokens:.4f}; per-token latency "
        f"(t_target + γ·t_draft)/E = {1 / speedup:.4f} × t_target, speed-up {speedup:.3f}× "
        "(§39.4.6)."
    ]
    if (alpha, gamma, ratio) == (
        example["alpha"],
        example["gamma"],
        example["draft_cost_ratio"],
    ):
        notes.append(
            f"§39.4.6 prints {example['stated_tokens_per_step']} tokens for this example; the "
            f"formula gives {e_tokens:.4f} (the ≈{example['stated_speedup']}× speed-up holds)."
        )
    if term == "first_token":
        notes.append("Decoding is sped up; prefill (t_prompt) is not.")
    return notes


def _hedge(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    n = as_integer(spec, spec.value, "the number of parallel requests", minimum=1)
    delay_ms = as_number(spec, spec.get("delay_ms") or "0", "delay_ms")
    term = targets(spec, state, ("llm_ttft", "first_token"))
    state.durations[term] = mode.hedge(state.durations[term], n, delay_ms)
    if delay_ms > 0:
        notes = [
            f"Deferred hedge: request k+1 only after {delay_ms:g} ms without a token, first "
            f"token wins (Dean & Barroso, The Tail at Scale, CACM 2013); extra load is the share "
            f"of requests slower than {delay_ms:g} ms."
        ]
    else:
        notes = [
            f"{n} parallel requests, first token wins: CDF 1 − (1 − F)^{n}; cuts P99, not the "
            f"average (T. Pan), for {n}× the LLM requests."
        ]
    if isinstance(mode, BoundsMode):
        notes.append("A fixed value does not change under hedging: see the simulated tail.")
    return notes


def _preemptive(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    if state.overlaps:
        raise LeverError(f"{spec.text!r}: preemptive generation is already applied")
    stable_ms = as_number(spec, spec.get("stable_ms") or "0", "stable_ms")
    mismatch = as_number(spec, spec.get("mismatch") or "0", "mismatch")
    if mismatch > 1:
        raise LeverError(f"{spec.text!r}: mismatch is a probability in [0, 1]")
    through = spec.get("through") or "llm"
    if through not in ("llm", "tts"):
        raise LeverError(f"{spec.text!r}: through= is llm or tts, got {through!r}")
    behind = tuple(t for t in ("endpointing", "stt", "stt_finalization") if t in state.durations)
    hidden: tuple[str, ...] = ()
    for chain in (("llm_ttft",), ("llm",), ("prompt", "first_token"), ("first_token",)):
        if all(t in state.durations for t in chain):
            hidden = chain
            break
    if hidden and through == "tts":
        # The speculation also aggregates its first sentence and synthesizes it (held audio,
        # earshot.levers.preemptive): those terms run early too.
        after = ("sentence_aggregation", "tts_first_audio", "tts")
        hidden = hidden + tuple(t for t in after if t in state.durations)
    if not behind or not hidden:
        raise LeverError(
            f"{spec.text!r} overlaps the LLM (llm_ttft, llm, or prompt+first_token) with "
            f"end-of-turn and ASR (endpointing, stt, stt_finalization); this budget lacks one side "
            f"({have(state)})"
        )
    state.overlaps.append(Overlap(hidden, behind, stable_ms, mode.restart(mismatch)))
    notes = [
        f"{'+'.join(hidden)} starts {stable_ms:g} ms after speech end on a stable partial "
        f"transcript, in parallel with {'+'.join(behind)}; only what outlasts them stays on the "
        f"critical path; with probability {mismatch:g} the final transcript differs and it "
        "restarts."
    ]
    if spec.get("mismatch") is None:
        notes.append("mismatch=0 assumes the partial is never revised; give mismatch=P.")
    return notes


_CACHE_KEEPS = (
    "endpointing",
    "vad",
    "codec",
    "network_in",
    "net_in",
    "uplink_jitter_buffer",
    "network",
    "transport",
    "jitter_buffer",
    "network_out",
    "net_out",
    "client_playout",
)


def _cache(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    hit_rate = as_number(spec, spec.value, "the hit rate")
    if hit_rate > 1:
        raise LeverError(f"{spec.text!r}: the hit rate is a probability in [0, 1]")
    hit = 1.0 - mode.restart(1.0 - hit_rate)  # 1 where (in this draw / bound) the cache hit
    removed = [t for t in state.durations if t not in _CACHE_KEEPS]
    for term in removed:
        state.durations[term] = state.durations[term] * (1.0 - hit)
    return [
        f"A response-cache hit (rate {hit_rate:g}) replays stored audio: "
        f"{', '.join(removed) or 'nothing'} leave the critical path; end-of-turn, network and "
        "the jitter buffer remain (earshot.levers.cache)."
    ]


def _stream(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    return _stream_or_batch(spec, state, mode, streaming=True)


def _batch(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    return _stream_or_batch(spec, state, mode, streaming=False)


_BATCH_TERM = {"stt": "stt", "llm": "llm", "tts": "tts"}
_STREAMING_TERM = {"stt": "stt_finalization", "llm": "llm_ttft", "tts": "tts_first_audio"}


def _stream_or_batch(
    spec: LeverSpec, state: PathState, mode: Mode, *, streaming: bool
) -> list[str]:
    savings = lever_data()["streaming_savings"]
    stage = spec.value or ""
    if stage not in savings:
        raise LeverError(f"{spec.text!r}: the stage is one of {', '.join(savings)}")
    key = "saving_ms" if streaming else "cost_ms"
    given = spec.get(key)
    amount = (
        mode.bound(*range_of(savings[stage]["saving_ms"]), saving=streaming)
        if given is None
        else np.asarray(np.float64(as_number(spec, given, key)))
    )
    term = targets(spec, state, ((_BATCH_TERM if streaming else _STREAMING_TERM)[stage],))
    x = state.durations[term]
    state.durations[term] = np.maximum(0.0, x - amount) if streaming else x + amount
    effect = "removes" if streaming else "puts back"
    return [
        f"Streaming {stage} overlaps it with the stage before it; this {effect} "
        f"{_span(savings[stage]['saving_ms'])} ms on {term} ({savings[stage]['cite']})."
    ]


LEVERS: dict[str, LeverDef] = {
    d.name: d
    for d in (
        LeverDef(
            "vad_silence",
            "vad_silence=MS[,from=MS]",
            "VAD silence threshold (end-of-turn wait)",
            "§39.4.3",
            ("from", "term"),
            _vad_silence,
        ),
        LeverDef(
            "endpointing",
            "endpointing=grammar|semantic|heuristic",
            "smart end-pointing",
            "§39.4.3; T. Pan",
            ("term",),
            _endpointing,
        ),
        LeverDef(
            "codec",
            "codec=pcm16|opus10|opus20|opus40|g711|neural[,from=CODEC]",
            "frame size and codec (encode latency)",
            "§39.4.4 codec table",
            ("from", "term"),
            _codec,
        ),
        LeverDef(
            "jitter_buffer",
            "jitter_buffer=MS",
            "client jitter buffer depth",
            "§39.4.2 Table 39.4.2a",
            ("term",),
            _jitter_buffer,
        ),
        LeverDef(
            "prompt_cache",
            "prompt_cache=FRACTION[,prompt_tokens=N,prefill_ms_per_token=MS]",
            "prompt caching: cached share of the prefill",
            "§39.4",
            ("prompt_tokens", "prefill_ms_per_token", "term"),
            _prompt_cache,
        ),
        LeverDef(
            "rtt",
            "rtt=MS[,term=NAME]",
            "routing: network round-trip time",
            "§39.4.2 Table 39.4.2a; T. Pan",
            ("term",),
            _rtt,
        ),
        LeverDef(
            "model",
            "model=groq-llama|gpt-4o-mini|gemini-flash-1.5|gpt-4o",
            "LLM choice by published TTFT",
            "T. Pan, Voice AI in Production",
            ("term",),
            _model,
        ),
        LeverDef(
            "ttft",
            "ttft=MS",
            "LLM choice by measured TTFT",
            "T. Pan, Voice AI in Production",
            ("term",),
            _ttft,
        ),
        LeverDef(
            "spec_decode",
            "spec_decode[,alpha=A,gamma=G,draft_cost=C,tokens=K]",
            "speculative decoding (defaults: the §39.4.6 example α=0.7, γ=4, C=1/8)",
            "§39.4.6; Leviathan et al., ICML 2023",
            ("alpha", "gamma", "draft_cost", "tokens", "term"),
            _spec_decode,
        ),
        LeverDef(
            "hedge",
            "hedge=N[,delay_ms=MS]",
            "LLM hedging: N requests, first token wins (delay_ms: each further one only after "
            "that long without a token)",
            "T. Pan, Voice AI in Production; Dean & Barroso, CACM 2013",
            ("delay_ms", "term"),
            _hedge,
        ),
        LeverDef(
            "preemptive",
            "preemptive[,stable_ms=MS,mismatch=P,through=llm|tts]",
            "preemptive generation on a stable partial transcript (through=tts: the "
            "speculation's first sentence is synthesized early too)",
            "§39.2.2 (overlap)",
            ("stable_ms", "mismatch", "through"),
            _preemptive,
        ),
        LeverDef(
            "cache",
            "cache=HIT_RATE",
            "response cache: a hit replays a stored reply (text and audio)",
            "earshot.levers.cache",
            (),
            _cache,
        ),
        LeverDef(
            "stream",
            "stream=stt|llm|tts[,saving_ms=MS]",
            "make a batch stage streaming",
            "Latency Budgeting: Speed Goals for Realtime Voice",
            ("saving_ms", "term"),
            _stream,
        ),
        LeverDef(
            "batch",
            "batch=stt|llm|tts[,cost_ms=MS]",
            "make a streaming stage batch",
            "Latency Budgeting: Speed Goals for Realtime Voice",
            ("cost_ms", "term"),
            _batch,
        ),
    )
}
"""Every lever by name."""


def apply_lever(spec: LeverSpec, state: PathState, mode: Mode) -> list[str]:
    """Apply one lever to ``state`` in place; returns notes (trade-offs, assumptions, sources).

    Raises:
        LeverError: the lever's parameters are bad or its target terms are missing.
    """
    return LEVERS[spec.name].apply(spec, state, mode)
