"""The documents of `earshot eval levers`, typed: what each arm returns and ``levers.json`` holds.

Each is a `TypedDict`: the value is the plain JSON object written to ``levers.json`` and to
``levers.trials.jsonl`` (and read back from it on a resumed run, or from a Ray worker), while
mypy checks every key the arms write and the report reads. Times are in ms on the wall clock of
the machine that ran the arm; shares are 0–1.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from earshot.evals.latency_proxy import ProxyCounters, TailProfileDoc
from earshot.levers.cache import CacheCounters
from earshot.levers.session_levers import PreemptiveCounters

Quantiles = dict[str, float | None]
"""Percentile name (``"p50"``, ``"p95"``, ``"p99"``) → ms; None when a side has no trials."""


class ComparisonDoc(TypedDict):
    """One quantity off vs on (`earshot.evals.levers_stats.Comparison.to_json`)."""

    name: str
    num_off: int
    num_on: int
    off_ms: Quantiles
    on_ms: Quantiles
    change_ms: Quantiles
    relative_change: dict[str, float | None]
    spread_ms: Quantiles
    projected_on_ms: Quantiles
    projected_change_ms: Quantiles
    model_disagrees: dict[str, bool]


class ProjectionDoc(TypedDict):
    """``earshot budget --from OFF --lever LEVER --simulate`` on a measured run
    (`earshot.evals.levers_stats.project_ttfat`); only ``lever`` and ``error`` when the model
    could not be run on it."""

    lever: str
    baseline: NotRequired[dict[str, float]]
    projected: NotRequired[dict[str, float]]
    baseline_mean_ms: NotRequired[dict[str, float]]
    projected_mean_ms: NotRequired[dict[str, float]]
    turns: NotRequired[int]
    error: NotRequired[str]


class TtftSummary(TypedDict):
    """A few requests' TTFT: how many, and their p50 / p95 (ms; None when n is 0)."""

    n: int
    p50: float | None
    p95: float | None


class _SessionArmDoc(TypedDict):
    """What `earshot.evals.levers_trial.run_trial` adds to a session arm's section."""

    upstream_ttft_ms: NotRequired[dict[str, TtftSummary]]
    """Per run (the proxy's label): the real server's own TTFT, the injected delay excluded."""
    server_prompt_cache: NotRequired[bool | None]
    """The rig's llama.cpp RAM prompt cache; None for a server the rig did not start."""


class CacheDoc(_SessionArmDoc):
    """The ``cache`` lever (`earshot.evals.levers_session.cache_arm`)."""

    lever: Literal["cache"]
    turns_compared: int
    max_word_distance: float
    hit_rate: float
    cache: CacheCounters | None
    comparison: ComparisonDoc
    saving_per_term_ms: dict[str, float]
    hit_ttfat_is_endpointing_plus_jitter_only: bool
    hit_ttfat_ms: list[float]
    hit_endpointing_plus_jitter_ms: list[float]
    projection: ProjectionDoc | None
    note: str


class PreemptiveDoc(_SessionArmDoc):
    """The ``preemptive`` lever (`earshot.evals.levers_session.preemptive_arm`)."""

    lever: Literal["preemptive"]
    stt: str
    turns_compared: int
    matched: int
    match_rate: float
    passes: int
    lead_ms: list[float]
    preemptive: PreemptiveCounters | None
    comparison: ComparisonDoc
    comparison_all_turns: ComparisonDoc
    projection_all_turns: ProjectionDoc | None
    saving_per_term_ms: dict[str, float]
    off_llm_ttft_p50_ms: float | None
    meets_criterion: bool | None
    criterion: str
    projection: ProjectionDoc | None


class HedgeArmDoc(TypedDict):
    """One arm of the ``hedge`` lever; ``comparison`` and ``meets_criterion`` are absent for
    the ``off`` arm itself."""

    requests: int
    failed: int
    requests_sent: int
    extra_requests: int
    cancelled_streams: int
    second_request_won: int
    ttft_ms: list[float]
    comparison: NotRequired[ComparisonDoc]
    meets_criterion: NotRequired[bool | None]
    model_lever: str


class UpstreamTailDoc(TypedDict):
    """Each real server's own TTFT percentiles (no injected delay) and their correlation on the
    same prompt (hedging assumes independent replicas)."""

    a: Quantiles
    b: Quantiles
    correlation: float | None


class HedgeRigDoc(TypedDict):
    pinned_cpus: list[int | None]
    """The CPU each started server is pinned to (None: not pinned)."""
    prompt_cache: bool
    trial_max_tokens: int
    prompts: int


class HedgeDoc(TypedDict):
    """The ``hedge`` lever (`earshot.evals.levers_trial`)."""

    lever: Literal["hedge"]
    arms: dict[str, HedgeArmDoc]
    criterion: str
    upstream: UpstreamTailDoc
    rig: HedgeRigDoc


class ContextRequestDoc(TypedDict):
    """`earshot.evals.levers_context.ContextRequest.to_json`."""

    arm: str
    block: int
    turn: int
    prompt_tokens: int | None
    reused_tokens: int | None
    ttft_ms: float | None
    error: str
    extended: bool


class TokenRange(TypedDict):
    min: int | None
    max: int | None


class PrefillFit(TypedDict):
    """``ttft_ms ≈ intercept_ms + ms_per_token × prompt_tokens`` (least squares)."""

    intercept_ms: float
    ms_per_token: float


class ContextProjectionDoc(TypedDict):
    lever: str
    projected: dict[str, float] | None


class ContextPolicyDoc(TypedDict):
    keep_turns: int
    fold_turns: int


class ContextDoc(TypedDict):
    """The ``context`` lever (`earshot.evals.levers_context.context_arm`)."""

    lever: Literal["context"]
    turns: int
    policy: ContextPolicyDoc
    blocks: list[str]
    requests: list[ContextRequestDoc]
    failed: int
    errors: list[str]
    prompt_tokens: dict[str, TokenRange]
    reused_share_on: float | None
    on_by_prefix: dict[str, TtftSummary]
    prefill_fit: dict[str, PrefillFit | None]
    comparison: ComparisonDoc
    projection: ContextProjectionDoc | None
    server_prompt_cache: NotRequired[bool | None]


LeverDoc = HedgeDoc | CacheDoc | PreemptiveDoc | ContextDoc
"""One lever's section of ``levers.json``; its ``lever`` key says which."""


class ServersDoc(TypedDict):
    upstreams: list[str]
    proxies: list[str]


class MachineDoc(TypedDict):
    cpus: int | None
    load_average_start: list[float]
    load_average_end: list[float]


class TrialDoc(TypedDict):
    """One trial (one lever) as `earshot.evals.levers_trial.run_trial` returns it."""

    lever: str
    servers: ServersDoc
    result: LeverDoc
    proxy_stats: list[ProxyCounters]
    machine: MachineDoc
    utterances: NotRequired[list[str]]
    """Session levers: the callers' file names."""
    session_cpus: NotRequired[list[int]]


class LeverSections(TypedDict, total=False):
    """``levers.json``'s ``levers``: the section of each lever measured."""

    hedge: HedgeDoc
    cache: CacheDoc
    preemptive: PreemptiveDoc
    context: ContextDoc


class SettingsDoc(TypedDict):
    levers: list[str]
    trials: int
    quick: bool
    seed: int
    max_tokens: int
    trial_max_tokens: int
    hedge_percentile: float
    utterances: NotRequired[list[str]]


class LeversDoc(TypedDict):
    """``levers.json`` (`earshot.evals.levers_report.levers_doc`)."""

    settings: SettingsDoc
    injected_ttft: TailProfileDoc
    machine: MachineDoc | None
    levers: LeverSections
    servers: dict[str, ServersDoc]
    proxy_stats: list[ProxyCounters]
