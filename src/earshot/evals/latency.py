"""`earshot eval latency`: time every stage of the streaming loop over N real utterances.

The measurement exercise of the streaming-architecture literature: N utterances (default 20)
through the full loop — VAD, end-of-turn, streaming STT, LLM, sentence chunker, streaming TTS,
jitter buffer — with a timestamp at end-of-turn, STT final, LLM first token, TTS first audio
and the first played sample, reporting p50/p95 of each stage delta and of end-to-end TTFAT
(time from the end of the user's speech to the first agent sample played).

The utterances are recordings listed in a folder's ``manifest.jsonl`` (default: the bundled
``earshot/data``): one JSON object per line with at least ``path`` (relative to the folder),
``kind`` (only ``"speech"`` entries are used), ``duration_s``, ``transcript`` and ``language``.
N of them are drawn in a seeded order (cycling through the pool when it is smaller than N),
placed on one caller track with a long silence after each so the agent's reply plays out
before the next one, and run through one `Session` — by default on a `SimulatedClock`, which
skips idle waits but charges the measured compute of every model call, so the run is faster
than real time with realistic latencies; ``--real-time`` paces it on the system clock.

The stage deltas (`STAGES`) are consecutive differences of the turn's marks, from
``speech_end`` to ``playout_start``, so for a file transport (no network terms) they sum to
TTFAT exactly. Percentiles are over complete turns only (every mark present).

Outputs in ``--out``: ``latency.json`` (settings, components, per-stage and per-term
percentiles, every turn), ``latency.png`` (p50/p95 per stage), ``latency.txt`` (the table
printed on the terminal) and ``turns.jsonl`` (one line per finished turn, durable as it goes).
An interrupted run (Ctrl-C) writes all of them with the turns measured so far.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.evals.manifest import MANIFEST_NAME, bundled_data_dir, read_manifest
from earshot.metrics.turn import TERMS, TurnRecord
from earshot.stacks import Stack, add_stack_arguments, resolve_stack

if TYPE_CHECKING:
    from earshot.clock import Clock
    from earshot.evals.tracks import PlacedUtterance
    from earshot.session.session import Session, SessionState

HELP = "time each stage of the loop over N real utterances; p50/p95 per stage and of TTFAT"
"""One-line help shown by ``earshot eval --help``."""

DEFAULT_N = 20
"""Utterances per run when ``--n`` is not given."""

DEFAULT_GAP_MS = 12_000.0
"""Silence after each utterance (ms). The bundled scripted replies are 25–35 words, about 9–12 s
of espeak-ng speech at its default 175 words per minute, so 12 s lets a reply finish playing
before the next utterance starts."""

LEAD_MS = 500.0
"""Silence before the first utterance (ms)."""

TAIL_MS = 1000.0
"""Silence after the last utterance (ms); the session keeps running until every reply played."""

QS: tuple[float, ...] = (50, 95)
"""Percentiles reported per stage."""


# --------------------------------------------------------------------------- utterances


@dataclass(frozen=True, slots=True)
class Utterance:
    """One recording from a manifest.

    Attributes:
        path: absolute path of the audio file (any format `read_audio` takes).
        name: ``path`` as written in the manifest (relative to the data folder).
        duration_s: duration stated in the manifest, in seconds.
        transcript: the reference transcript.
        language: the manifest's language code, e.g. ``"en"``.
    """

    path: Path
    name: str
    duration_s: float
    transcript: str
    language: str


def load_manifest(
    data_dir: str | os.PathLike[str], *, kind: str = "speech", language: str = "en"
) -> list[Utterance]:
    """The ``kind`` recordings in ``language`` listed in ``data_dir/manifest.jsonl``.

    Returns:
        The matching entries, sorted by their manifest path (so selection does not depend on
        line order).

    Raises:
        ValueError: the folder or its manifest is missing, a line is not a JSON object, an entry
            lacks a required field or names a file that does not exist, or no entry matches
            (each message names the file, line and fix).
    """
    folder = Path(data_dir)
    found: list[Utterance] = []
    for item in read_manifest(folder):
        entry = item.entry
        if entry.get("kind") != kind or entry.get("language") != language:
            continue
        if entry.get("duration_s") is None:
            raise ValueError(f"{item.where}: a {kind} entry needs duration_s; add it")
        found.append(
            Utterance(
                path=item.path,
                name=str(entry["path"]),
                duration_s=float(entry["duration_s"]),
                transcript=str(entry.get("transcript") or ""),  # optional: not scored here
                language=language,
            )
        )
    if not found:
        raise ValueError(
            f'{folder / MANIFEST_NAME} lists no entries with kind "{kind}" and language '
            f'"{language}"; add some, or point --data at another folder'
        )
    return sorted(found, key=lambda u: u.name)


def select_utterances(pool: Sequence[Utterance], n: int, seed: int) -> list[Utterance]:
    """``n`` utterances from ``pool`` in a seeded order.

    The pool is shuffled with ``random.Random(seed)`` and taken in that order; when ``n``
    exceeds the pool, it is reshuffled (same generator) for each further pass, so every clip is
    used once per pass. Same pool, ``n`` and seed → same list.

    Raises:
        ValueError: ``n`` < 1 or an empty pool.
    """
    if n < 1:
        raise ValueError(f"the latency eval needs at least 1 utterance, got n={n}")
    if not pool:
        raise ValueError("no utterances to choose from")
    rng = random.Random(seed)
    chosen: list[Utterance] = []
    while len(chosen) < n:
        order = list(pool)
        rng.shuffle(order)
        chosen.extend(order)
    return chosen[:n]


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage delta: ``marks_ms[end_mark] − marks_ms[start_mark]`` in ms."""

    name: str
    start_mark: str
    end_mark: str
    description: str


STAGES: tuple[Stage, ...] = (
    Stage("endpointing", "speech_end", "end_of_turn", "end of speech → end-of-turn decision"),
    Stage("stt_finalization", "end_of_turn", "stt_final", "end-of-turn → final transcript"),
    Stage("llm_dispatch", "stt_final", "llm_request", "final transcript → LLM request (engine)"),
    Stage("llm_ttft", "llm_request", "llm_first_token", "LLM request → first token"),
    Stage(
        "sentence_aggregation",
        "llm_first_token",
        "first_sentence",
        "first token → first sentence to TTS",
    ),
    Stage("tts_first_audio", "first_sentence", "tts_first_audio", "first sentence → first audio"),
    Stage("playout", "tts_first_audio", "playout_start", "first audio → first played sample"),
)
"""Consecutive stage deltas from ``speech_end`` to ``playout_start``; they sum to TTFAT when
the network terms are 0 (file transport). Names match `TERMS` where the span is the same;
``llm_dispatch`` and ``playout`` include the two parts of ``engine_overhead`` (``playout`` also
holds the jitter buffer)."""


def stage_deltas(turn: TurnRecord) -> dict[str, float] | None:
    """Each `STAGES` delta of a complete turn in ms, or ``None`` if a mark is missing."""
    if not turn.complete:
        return None
    m = turn.marks_ms
    return {s.name: m[s.end_mark] - m[s.start_mark] for s in STAGES}


def _stat(values: Sequence[float]) -> dict[str, float | int | None]:
    from earshot.metrics.stats import percentiles

    pct = percentiles(values, QS)
    out: dict[str, float | int | None] = {"n": len(values)}
    for q in QS:
        key = f"p{q:g}"
        out[f"{key}_ms"] = None if pct is None else round(pct[key], 3)
    out["mean_ms"] = round(math.fsum(values) / len(values), 3) if values else None
    out["max_ms"] = round(max(values), 3) if values else None
    return out


def summarize_stages(turns: Sequence[TurnRecord]) -> dict[str, Any]:
    """Percentiles of each stage, of TTFAT and of each TTFAT term, over the complete turns.

    Returns:
        ``{"stages": {name: stat}, "ttfat": stat, "terms": {term: stat}}`` where a stat is
        ``{"n", "p50_ms", "p95_ms", "mean_ms", "max_ms"}`` (values ``None`` with no turns).

    Raises:
        ValueError: a complete turn has a negative term (marks out of order: a clock bug).
    """
    from earshot.metrics.stats import validate_terms

    validate_terms(turns)
    complete = [t for t in turns if t.complete]
    per_stage: dict[str, list[float]] = {s.name: [] for s in STAGES}
    per_term: dict[str, list[float]] = {name: [] for name in TERMS}
    ttfats: list[float] = []
    for t in complete:
        deltas = stage_deltas(t)
        terms = t.terms_ms
        assert deltas is not None and terms is not None and t.ttfat_ms is not None
        for name, value in deltas.items():
            per_stage[name].append(value)
        for name, value in terms.items():
            per_term[name].append(value)
        ttfats.append(t.ttfat_ms)
    return {
        "stages": {name: _stat(values) for name, values in per_stage.items()},
        "ttfat": _stat(ttfats),
        "terms": {name: _stat(values) for name, values in per_term.items()},
    }


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class LatencyOptions:
    """Everything `earshot eval latency` takes (the CLI's flags).

    Attributes:
        n: utterances to run.
        seed: selection order and the scripted LLM's seed.
        data_dir: folder with ``manifest.jsonl``; ``None`` uses the bundled recordings.
        out_dir: where the outputs go.
        vad: VAD backend name (``earshot.vad.make_vad``).
        endpointer: end-of-turn policy name (``earshot.turns.factory.make_endpointer``).
        eot_silence_ms: the fixed end-pointer's silence threshold (ms).
        llm_profile: latency profile of the scripted LLM (``earshot.llm.PROFILES``).
        stack: model backends (`earshot.stacks.Stack`); None is the ``fast`` stack.
        real_time: pace on the system clock instead of the simulated clock.
        gap_ms: silence after each utterance (ms).
        language: manifest language of the utterances to use.
        quiet: no progress display.
    """

    n: int = DEFAULT_N
    seed: int = 0
    data_dir: Path | None = None
    out_dir: Path = Path("out/eval-latency")
    vad: str = "silero"
    endpointer: str = "fixed"
    eot_silence_ms: float = 500.0
    llm_profile: str = "gpt-4o-mini"
    stack: Stack | None = None
    real_time: bool = False
    gap_ms: float = DEFAULT_GAP_MS
    language: str = "en"
    quiet: bool = False


@dataclass(slots=True)
class LatencyRun:
    """A finished (or interrupted) latency eval.

    Attributes:
        options: what was asked for.
        utterances: the selected utterances, in track order.
        placed: where each sits on the caller track (16 kHz samples).
        turns: every turn the session produced, complete or not.
        components: stage → backend description, saying which parts are real or simulated.
        interrupted: the run was stopped (Ctrl-C) before the track ended.
        summary: `summarize_stages` of ``turns``.
        input_ms: duration of the caller track (ms).
        processed_ms: caller audio the session consumed (ms); less than ``input_ms`` only if
            the run was interrupted (or the session stopped early, which the report flags).
    """

    options: LatencyOptions
    utterances: list[Utterance]
    placed: list[PlacedUtterance]
    turns: list[TurnRecord] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    input_ms: float = 0.0
    processed_ms: float = 0.0

    @property
    def complete_turns(self) -> list[TurnRecord]:
        return [t for t in self.turns if t.complete]

    @property
    def waited_turns(self) -> list[TurnRecord]:
        """Turns whose first audio queued behind an earlier reply (see `reply_waits_ms`)."""
        return [t for t in self.turns if "waited_for_earlier_reply_ms" in t.extra]


def utterance_of(turn: TurnRecord, placed: Sequence[PlacedUtterance]) -> int | None:
    """Index of the placed utterance a turn's ``speech_end`` falls in (or after, before the next
    one starts); ``None`` before the first or without a ``speech_end`` mark."""
    from earshot.audio.frames import samples_to_ms

    end_ms = turn.marks_ms.get("speech_end")
    if end_ms is None:
        return None
    index: int | None = None
    for i, p in enumerate(placed):
        if samples_to_ms(p.start_sample) <= end_ms:
            index = i
    return index


def reply_waits_ms(turns: Sequence[TurnRecord]) -> dict[int, float]:
    """How long each turn's first audio waited for an earlier reply to finish playing (ms).

    Replies play one after another: when the user speaks again while a reply is still playing
    and barge-in does not stop it (or is off), the next reply's audio is queued behind it, and
    its ``playout`` stage holds that wait. For each turn (in order) with ``playout_queued`` and
    ``playout_start`` marks, the wait is ``min(playout_start, end of the earlier replies) −
    playout_queued`` when positive, where a reply ends ``played_samples`` (16 kHz, from
    ``extra``) after its ``playout_start``.

    Returns:
        Turn number → wait in ms, only for turns that waited.
    """
    from earshot.audio.frames import samples_to_ms

    waits: dict[int, float] = {}
    busy_until_ms = -math.inf
    for t in turns:
        m = t.marks_ms
        if "playout_queued" not in m or "playout_start" not in m:
            continue
        wait_ms = min(m["playout_start"], busy_until_ms) - m["playout_queued"]
        if wait_ms > 0:
            waits[t.turn] = wait_ms
        played = t.extra.get("played_samples")
        if isinstance(played, int | float):
            busy_until_ms = max(busy_until_ms, m["playout_start"] + samples_to_ms(played))
    return waits


def run_latency(opts: LatencyOptions) -> LatencyRun:
    """Run the eval and write its outputs into ``opts.out_dir``.

    The outputs are written in a ``finally``: an interrupted run (Ctrl-C) still leaves them,
    holding the turns done so far, and returns with ``interrupted=True``.

    Raises:
        ValueError: bad options or data (the message names the fix).
        AudioFileError: a recording cannot be read.
    """
    from earshot.audio.frames import samples_per_frame, samples_to_ms
    from earshot.clock import SimulatedClock, SystemClock
    from earshot.converse import (
        ConverseOptions,
        build_components,
        describe_components,
        session_from_parts,
    )
    from earshot.evals.latency_report import write_outputs
    from earshot.evals.tracks import build_caller_track, load_clips
    from earshot.metrics.progress import ConverseProgress
    from earshot.metrics.report import TurnLog
    from earshot.session.config import SessionConfig

    if opts.gap_ms <= opts.eot_silence_ms:
        raise ValueError(
            f"gap {opts.gap_ms:g} ms must be longer than the end-of-turn silence "
            f"{opts.eot_silence_ms:g} ms, or utterances merge into one turn; raise --gap-ms"
        )
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    pool = load_manifest(data_dir, language=opts.language)
    chosen = select_utterances(pool, opts.n, opts.seed)
    clips = load_clips([u.path for u in chosen])
    track, placed = build_caller_track(
        clips, opts.gap_ms, LEAD_MS, TAIL_MS, names=[u.name for u in chosen]
    )
    clock: Clock = SystemClock() if opts.real_time else SimulatedClock()
    stack = opts.stack or resolve_stack(None)
    converse_opts = ConverseOptions(
        input_path=data_dir,
        out_dir=opts.out_dir,
        session=SessionConfig(),
        vad=opts.vad,
        endpointer=opts.endpointer,
        eot_silence_ms=opts.eot_silence_ms,
        stt=stack.stt,
        llm=stack.llm,
        llm_options=(
            {"profile": opts.llm_profile, "seed": opts.seed} if stack.llm == "scripted" else {}
        ),
        tts=stack.tts,
        simulated_clock=not opts.real_time,
    )
    parts = build_components(converse_opts, clock)
    run = LatencyRun(opts, chosen, placed, components=describe_components(parts, clock))
    run.input_ms = samples_to_ms(len(track))
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    log = TurnLog(opts.out_dir / "turns.jsonl")
    progress = ConverseProgress(run.input_ms, quiet=opts.quiet)
    frame_samples = samples_per_frame(converse_opts.session.frame_ms)
    holder: list[Session] = []

    async def main() -> SessionState:
        if isinstance(clock, SystemClock):
            clock.reset_origin()
        session = session_from_parts(
            converse_opts.session,
            clock,
            parts,
            on_turn=log.append,
            on_tick=lambda t_ms, st: progress.update(t_ms, st.turns),
        )
        holder.append(session)
        return await session.run(track)

    try:
        with progress:
            clock.run(main)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        log.close()
        if holder:
            run.turns = list(holder[0].state.turns)
            frames_done = min(holder[0].state.input_frames_done, -(-len(track) // frame_samples))
            run.processed_ms = min(run.input_ms, frames_done * converse_opts.session.frame_ms)
        waits = reply_waits_ms(run.turns)
        for turn in run.turns:
            index = utterance_of(turn, placed)
            if index is not None:
                turn.extra.setdefault("utterance", chosen[index].name)
            if turn.turn in waits:
                turn.extra["waited_for_earlier_reply_ms"] = round(waits[turn.turn], 3)
        run.summary = summarize_stages(run.turns)
        write_outputs(run)
    return run


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval latency`'s flags on ``parser``."""
    from earshot.llm.scripted import DEFAULT_PROFILE, PROFILES

    parser.add_argument(
        "--n", type=int, default=DEFAULT_N, help=f"utterances to run (default {DEFAULT_N})"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="selection order and scripted-LLM seed (default 0)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="folder with manifest.jsonl and its recordings (default: the bundled recordings)",
    )
    parser.add_argument(
        "--language", default="en", help="manifest language of the utterances (default en)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/eval-latency"), help="output folder")
    parser.add_argument("--vad", default="silero", choices=("silero", "webrtc"), help="VAD backend")
    add_stack_arguments(parser)
    parser.add_argument("--llm", choices=("scripted", "local"), help="LLM (overrides --stack)")
    parser.add_argument(
        "--endpointer", default="fixed", choices=("fixed", "smart"), help="end-of-turn policy"
    )
    parser.add_argument(
        "--eot-silence-ms",
        type=float,
        default=500.0,
        help="silence after speech that ends a turn (fixed endpointer; default 500)",
    )
    parser.add_argument(
        "--llm-profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help=f"latency profile of the scripted (simulated) LLM (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=DEFAULT_GAP_MS,
        help=f"silence after each utterance, room for the reply (default {DEFAULT_GAP_MS:g})",
    )
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="pace on the system clock (default: simulated clock, compute charged, faster)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    """`earshot eval latency`: 0 done, 1 nothing measured, 2 bad input, 130 interrupted
    (outputs are written in every case but 2)."""
    from rich.console import Console

    from earshot.audio.io import AudioFileError
    from earshot.evals.latency_report import components_lines, render_table

    try:
        stack = resolve_stack(args.stack, args.stt, args.llm, args.tts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opts = LatencyOptions(
        stack=stack,
        n=args.n,
        seed=args.seed,
        data_dir=args.data,
        out_dir=args.out,
        vad=args.vad,
        endpointer=args.endpointer,
        eot_silence_ms=args.eot_silence_ms,
        llm_profile=args.llm_profile,
        real_time=args.real_time,
        gap_ms=args.gap_ms,
        language=args.language,
        quiet=args.quiet,
    )
    try:
        result = run_latency(opts)
    except (AudioFileError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    console = Console()
    console.print(render_table(result))
    for line in components_lines(result):
        console.print(line, highlight=False)
    console.print(f"wrote {opts.out_dir}/latency.json, latency.png, latency.txt, turns.jsonl")
    if result.interrupted:
        console.print("interrupted: outputs hold the turns done so far")
        return 130
    if not result.complete_turns:
        print(
            "error: no complete turn was measured; check that the recordings hold speech "
            "the VAD detects (--vad) and that --gap-ms leaves room for the replies",
            file=sys.stderr,
        )
        return 1
    return 0
