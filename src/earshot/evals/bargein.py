"""`earshot eval bargein`: does the agent stop when talked over, and only then?

Each scenario is a user track built from real recordings (`earshot.evals.bargein_scenarios`): a
question the agent answers at length (a scripted reply of about 11 s, from
``earshot/data/evals/bargein_rules.yaml``), then one event placed ``offset`` after the reply's
first played sample — a *cut-in* (another recorded utterance), a *noise* (0.3–1 s of a recorded
keyboard, tap, hum...), or a *backchannel* ("yeah", synthesized with espeak-ng: the bundled
recordings hold no human one) — under three acoustic conditions: ``clean`` (no echo), ``echo``
(the agent's playout leaks into the microphone through a simulated room, AEC off) and
``echo+aec`` (the same room, WebRTC AEC3 on). To put the event at an exact offset into the
reply, a first pass runs the question alone and reads the reply's ``playout_start``.

The session runs with the real components (Silero VAD, pocketsphinx, espeak-ng, AEC3) on a
`SimulatedClock`; the LLM is the scripted one (simulated by design). What is measured, and
against which ground truth, is defined in `earshot.evals.bargein_score`: cut-in success,
reaction time (session-measured from the VAD onset, and ground truth from the agent track and
the placed recording), heard vs generated words and whether the heard text is exactly the words
played before the stop, false interruptions, resumes, self-interruptions, replies completed
after noise and backchannels, and the ERLE of AEC3 on each echo+aec run's agent track. The
done-when of barge-in: reaction p95 ≤ ``min_interruption_ms`` + 2 frames (240 ms at 200 ms and
20 ms frames), session-measured.

Outputs in ``--out``: ``bargein.json`` (settings, components, summary, every scenario),
``bargein.txt`` (the tables printed on the terminal), ``bargein.png`` (reaction-time
distribution; self- and false interruptions per condition). An interrupted run (Ctrl-C) writes
them with the scenarios done so far.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.evals.bargein_scenarios import (
    BACKCHANNEL_VOICE,
    MIN_CUT_IN_MS,
    Clip,
    Condition,
    Scenario,
)
from earshot.evals.bargein_score import (
    ScenarioOutcome,
    offline_erle_db,
    score_scenario,
)
from earshot.evals.manifest import bundled_data_dir

if TYPE_CHECKING:
    from earshot.audio.frames import Pcm16
    from earshot.session.session import Session, SessionState
    from earshot.stt.base import StreamingRecognizer
    from earshot.tts.base import Synthesizer
    from earshot.vad.base import VoiceActivityDetector

HELP = "barge-in on real recordings: reaction time, heard words, false and self-interruptions"
"""One-line help shown by ``earshot eval --help``."""

DEFAULT_OFFSETS_MS: tuple[float, ...] = (500.0, 1500.0, 3000.0, 5000.0)
"""Where events land after the reply's first played sample (ms)."""

LEAD_MS = 500.0
"""Silence before the question (ms)."""

QUESTION_TAIL_MS = 3000.0
"""First pass: silence after the question clip, room for the reply to start (ms)."""

CUT_IN_TAIL_MS = 3000.0
"""Silence after a cut-in's sound: room for its end of turn and the start of its answer (ms)."""

EVENT_TAIL_MS = 1000.0
"""Silence after a noise or backchannel (ms); the session then runs until the reply is done."""

AFTER_INPUT_MS = 3000.0
"""How long the session may run past the input when no reply needs to finish (ms)."""

QUICK_MAX_SOUND_MS = 3000.0
"""Quick mode uses only recordings with at most this much sound, to keep it short (ms)."""

EOT_SILENCE_MS = 500.0
"""The fixed end-pointer's silence threshold (ms), `earshot converse`'s default."""

RULES_RESOURCE = "data/evals/bargein_rules.yaml"


def packaged_rules_path() -> Path:
    """The eval's scripted-LLM rules file inside the package."""
    import importlib.resources

    return Path(str(importlib.resources.files("earshot").joinpath(RULES_RESOURCE)))


# --------------------------------------------------------------------------- options, run


@dataclass(slots=True)
class BargeInOptions:
    """Everything `earshot eval bargein` takes (the CLI's flags).

    Attributes:
        out_dir: where the outputs go.
        data_dir: folder with ``manifest.jsonl`` (speech and noise entries); None: bundled.
        seed: clip rotation and noise cuts.
        quick: a few scenarios on short clips (see `plan_scenarios`).
        offsets_ms: event offsets after the reply's first played sample (ms).
        exact_timing: `SimulatedClock(charge_compute=False)`: model compute takes no virtual
            time, so every mark is a function of the audio alone (reproducible); by default
            compute is charged at its measured duration (realistic, varies with machine load).
        frame_ms: session frame size (ms).
        min_interruption_ms, false_interruption_timeout_ms: the barge-in policy's thresholds.
        llm_profile: latency profile of the scripted LLM.
        language: manifest language of the speech clips.
        quiet: no progress lines.
    """

    out_dir: Path = Path("out/eval-bargein")
    data_dir: Path | None = None
    seed: int = 0
    quick: bool = False
    offsets_ms: tuple[float, ...] = DEFAULT_OFFSETS_MS
    exact_timing: bool = False
    frame_ms: int = 20
    min_interruption_ms: float = 200.0
    false_interruption_timeout_ms: float = 2000.0
    llm_profile: str = "gpt-4o-mini"
    language: str = "en"
    quiet: bool = False

    @property
    def bound_ms(self) -> float:
        """The done-when's reaction bound: min_interruption_ms + 2 frames (ms)."""
        return self.min_interruption_ms + 2 * self.frame_ms


@dataclass(slots=True)
class BargeInRun:
    """A finished (or interrupted) barge-in eval.

    Attributes:
        options: what was asked for.
        scenarios: the planned scenarios, in run order.
        results: one dict per scenario run so far (see `score_scenario`).
        components: stage → backend, saying which parts are real and which simulated.
        reply_text: the long scripted reply the events cut into.
        reply_ms: its duration as synthesized (ms).
        interrupted: stopped by Ctrl-C before every scenario ran.
        summary: `earshot.evals.bargein_score.summarize_results` of ``results``.
    """

    options: BargeInOptions
    scenarios: list[Scenario] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)
    reply_text: str = ""
    reply_ms: float = 0.0
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Models:
    """Models shared across scenarios (each is reset per run)."""

    vad: VoiceActivityDetector
    stt: StreamingRecognizer
    tts: Synthesizer


def _session_run(
    track: Pcm16,
    condition: Condition,
    models: _Models,
    opts: BargeInOptions,
    max_tail_ms: float,
) -> ScenarioOutcome:
    """Run one session on ``track`` under ``condition`` with fresh per-run state."""
    from earshot.audio.frames import samples_per_frame
    from earshot.clock import SimulatedClock
    from earshot.echo.aec import create_echo_canceller
    from earshot.echo.path import EchoPath, MicMixer
    from earshot.evals.bargein_score import PlayoutLog
    from earshot.llm import make_llm
    from earshot.session.config import SessionConfig
    from earshot.session.session import Session
    from earshot.turns.bargein import BargeInConfig
    from earshot.turns.factory import make_endpointer

    clock = SimulatedClock(charge_compute=not opts.exact_timing)
    reset = getattr(models.vad, "reset", None)
    if callable(reset):
        reset()
    llm = make_llm(
        "scripted", clock, rules_path=packaged_rules_path(), profile=opts.llm_profile, seed=0
    )
    from earshot.audio.frames import ms_to_samples
    from earshot.transports.file import ArraySource, FileTransport, MemoryRecorder

    log = PlayoutLog(samples_per_frame(opts.frame_ms))
    holder: list[Session] = []
    recorder = MemoryRecorder(
        len(track) + ms_to_samples(max_tail_ms) + 2 * samples_per_frame(opts.frame_ms)
    )
    transport = FileTransport(
        ArraySource(track),
        clock,
        mic=MicMixer(EchoPath()) if condition.echo else None,
        recorder=recorder,
        max_tail_ms=max_tail_ms,
    )

    def on_tick(_tick_ms: float, state: SessionState) -> None:
        jitter = holder[0].jitter
        played = {h.response_id: jitter.played_samples(h.response_id) for h in state.responses}
        log.observe(state.output_frames_done - 1, played)

    async def main() -> SessionState:
        session = Session(
            SessionConfig(frame_ms=opts.frame_ms, max_tail_ms=max_tail_ms),
            clock,
            models.vad,
            models.stt,
            llm,
            models.tts,
            make_endpointer("fixed", silence_ms=EOT_SILENCE_MS),
            bargein=BargeInConfig(
                min_interruption_ms=opts.min_interruption_ms,
                false_interruption_timeout_ms=opts.false_interruption_timeout_ms,
            ),
            aec=create_echo_canceller(True) if condition.aec else None,
            on_tick=on_tick,
        )
        holder.append(session)
        return await session.run(transport)

    state = clock.run(main)
    return ScenarioOutcome(state, state.responses, log, holder[0].jitter.underrun_samples, recorder)


def _reply_info(tts: Synthesizer) -> tuple[str, float]:
    """The long scripted reply and its synthesized duration (ms), chunked as the runner does."""
    import numpy as np

    from earshot.audio.frames import samples_to_ms
    from earshot.llm.scripted import load_rules
    from earshot.text.chunker import SentenceChunker

    rules = load_rules(packaged_rules_path())
    default = rules.default
    text = default[0] if isinstance(default, list) else default
    chunker = SentenceChunker()
    samples = 0
    for sentence in [*chunker.push(text), *chunker.flush()]:
        samples += int(sum(np.size(c.audio) for c in tts.synthesize(sentence)))
    return text, samples_to_ms(samples)


def _clips(
    opts: BargeInOptions, data_dir: Path
) -> tuple[list[Clip], list[Clip], list[Clip], list[Clip]]:
    """Questions, cut-ins, noise pieces and synthesized backchannels for this run."""
    from earshot.evals.bargein_scenarios import (
        load_noise_pieces,
        load_speech_clips,
        synthesize_backchannels,
    )
    from earshot.tts import make_tts

    speech = load_speech_clips(data_dir, opts.language)
    if opts.quick:
        short = [c for c in speech if c.sound_ms <= QUICK_MAX_SOUND_MS]
        speech = short or speech
    by_length = sorted(speech, key=lambda c: (c.sound_ms, c.name))
    questions = by_length[: 1 if opts.quick else max(1, min(3, len(by_length) // 2))]
    cut_ins = [c for c in speech if c.sound_ms >= MIN_CUT_IN_MS]
    if not cut_ins:
        raise ValueError(
            f"no speech recording in {data_dir} has {MIN_CUT_IN_MS:g} ms of sound for a cut-in; "
            "add longer utterances"
        )
    noises = load_noise_pieces(data_dir, random.Random(opts.seed))
    backchannels = synthesize_backchannels(make_tts("espeak", voice=BACKCHANNEL_VOICE))
    return questions, cut_ins, noises, backchannels


def _components(opts: BargeInOptions) -> dict[str, str]:
    from earshot.echo.path import EchoPath

    room = EchoPath()
    clock = (
        "simulated (virtual time, compute free: exact)"
        if opts.exact_timing
        else "simulated (virtual time, compute charged)"
    )
    return {
        "clock": clock,
        "transport": "file (recorded user track; network terms 0)",
        "vad": "silero (real)",
        "end-of-turn": f"fixed endpointer, {EOT_SILENCE_MS:g} ms",
        "stt": "pocketsphinx (real)",
        "llm": f"scripted ({opts.llm_profile} profile) (SIMULATED)",
        "tts": "espeak en-us (real)",
        "echo": (
            f"simulated room (EchoPath {room.delay_ms:g} ms, {room.gain_db:g} dB, "
            f"RT60 {room.decay_ms:g} ms) in echo and echo+aec"
        ),
        "aec": "WebRTC AEC3 (aec-audio-processing, real) in echo+aec",
        "backchannels": f"espeak-ng TTS (voice {BACKCHANNEL_VOICE}), NOT human recordings",
        "cut-ins, noise": "real recordings (manifest)",
    }


def run_bargein(opts: BargeInOptions) -> BargeInRun:
    """Run the eval and write its outputs into ``opts.out_dir``.

    The outputs are written in a ``finally``: an interrupted run (Ctrl-C) still leaves them,
    holding the scenarios done so far, and returns with ``interrupted=True``.

    Raises:
        ValueError: bad options or data (the message names the fix).
        AudioFileError: a recording cannot be read.
    """
    from earshot.evals.bargein_report import write_outputs
    from earshot.evals.bargein_scenarios import plan_scenarios
    from earshot.evals.bargein_score import summarize_results
    from earshot.stt import make_stt
    from earshot.tts import make_tts
    from earshot.vad import make_vad

    if any(o <= 0 for o in opts.offsets_ms):
        raise ValueError(f"offsets must be > 0 ms after the reply starts, got {opts.offsets_ms}")
    data_dir = opts.data_dir if opts.data_dir is not None else bundled_data_dir()
    questions, cut_ins, noises, backchannels = _clips(opts, data_dir)
    models = _Models(make_vad("silero"), make_stt("pocketsphinx"), make_tts("espeak"))
    run = BargeInRun(opts, components=_components(opts))
    run.reply_text, run.reply_ms = _reply_info(models.tts)
    run.scenarios = plan_scenarios(
        questions, cut_ins, noises, backchannels, opts.offsets_ms, opts.seed, opts.quick
    )
    starts: dict[tuple[str, str], float | None] = {}
    try:
        for scenario in run.scenarios:
            result = _run_scenario(scenario, models, opts, run.reply_ms, starts)
            run.results.append(result)
            if not opts.quiet:
                print(
                    f"[{len(run.results)}/{len(run.scenarios)}] {scenario.scenario_id}: "
                    f"{result['outcome']}",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.summary = summarize_results(run.results, opts.bound_ms)
        write_outputs(run)
    return run


def _run_scenario(
    scenario: Scenario,
    models: _Models,
    opts: BargeInOptions,
    reply_ms: float,
    starts: dict[tuple[str, str], float | None],
) -> dict[str, Any]:
    """First pass (cached per question and condition), then the scenario itself, scored."""
    from earshot.audio.frames import samples_to_ms
    from earshot.evals.bargein_scenarios import build_track

    question, condition = scenario.question, scenario.condition
    key = (question.name, condition.name)
    if key not in starts:
        end_ms = LEAD_MS + samples_to_ms(len(question.audio)) + QUESTION_TAIL_MS
        first = _session_run(
            build_track(question, LEAD_MS, end_ms).audio, condition, models, opts, 0.0
        )
        starts[key] = next(
            (
                t.marks_ms["playout_start"]
                for t in first.state.turns
                if "playout_start" in t.marks_ms
            ),
            None,
        )
    playout_start = starts[key]
    if playout_start is None:
        return _failed(scenario, "the question got no reply in the first pass")
    onset_ms = playout_start + scenario.offset_ms
    sound_end_ms = onset_ms + scenario.event.sound_ms
    if scenario.kind == "cut-in":
        end_ms, max_tail_ms = sound_end_ms + CUT_IN_TAIL_MS, AFTER_INPUT_MS
    else:
        end_ms = sound_end_ms + EVENT_TAIL_MS
        # The reply must be able to finish (after a resume) before the session gives up; with
        # echo and no AEC it never finishes (it keeps stopping itself), so do not wait for it.
        finish_ms = reply_ms + opts.false_interruption_timeout_ms + AFTER_INPUT_MS
        max_tail_ms = AFTER_INPUT_MS if condition.echo and not condition.aec else finish_ms
    track = build_track(question, LEAD_MS, end_ms, scenario.event, onset_ms)
    outcome = _session_run(track.audio, condition, models, opts, max_tail_ms)
    track_out, n = outcome.recorder.agent_track(), outcome.log.frame_samples
    frames = [track_out[i : i + n] for i in range(0, len(track_out), n)]
    erle = offline_erle_db(frames) if condition.aec else None
    return score_scenario(scenario, track, outcome, playout_start, erle)


def _failed(scenario: Scenario, why: str) -> dict[str, Any]:
    return {
        "scenario": scenario.scenario_id,
        "condition": scenario.condition.name,
        "echo": scenario.condition.echo,
        "aec": scenario.condition.aec,
        "kind": scenario.kind,
        "event": scenario.event.name,
        "question": scenario.question.name,
        "offset_ms": scenario.offset_ms,
        "barge_ins": [],
        "self_interruptions": 0,
        "resumes": 0,
        "success": False if scenario.kind == "cut-in" else None,
        "reply": None,
        "erle_db": None,
        "outcome": f"not run: {why}",
    }


# --------------------------------------------------------------------------- CLI


def _offsets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) * 1000.0 for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--offsets takes seconds separated by commas, e.g. 0.5,1.5,3,5; got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--offsets must be positive seconds, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `earshot eval bargein`'s flags on ``parser``."""
    from earshot.llm.scripted import DEFAULT_PROFILE, PROFILES

    parser.add_argument("--out", type=Path, default=Path("out/eval-bargein"), help="output folder")
    parser.add_argument(
        "--data",
        type=Path,
        help="folder with manifest.jsonl (speech and noise entries) and its recordings "
        "(default: the bundled recordings)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="clip rotation and noise cuts (default 0)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="6 scenarios on short clips (for tests, ~30 s)"
    )
    parser.add_argument(
        "--offsets",
        type=_offsets,
        default=DEFAULT_OFFSETS_MS,
        metavar="S,S,...",
        help="event offsets after the reply's first played sample, in seconds "
        "(default 0.5,1.5,3,5)",
    )
    parser.add_argument(
        "--exact-timing",
        action="store_true",
        help="model compute takes no virtual time: reproducible marks (default: charged)",
    )
    parser.add_argument(
        "--min-interruption-ms",
        type=float,
        default=200.0,
        help="user speech during playout that interrupts it (default 200)",
    )
    parser.add_argument(
        "--false-interruption-timeout-ms",
        type=float,
        default=2000.0,
        help="no words this long after a barge-in: resume the reply (default 2000)",
    )
    parser.add_argument(
        "--llm-profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help=f"latency profile of the scripted (simulated) LLM (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--language", default="en", help="manifest language of the speech clips (default en)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    """`earshot eval bargein`: 0 done, 2 bad input, 130 interrupted (outputs still written)."""
    from rich.console import Console

    from earshot.audio.io import AudioFileError
    from earshot.evals.bargein_report import done_when_line, render_tables

    opts = BargeInOptions(
        out_dir=args.out,
        data_dir=args.data,
        seed=args.seed,
        quick=args.quick,
        offsets_ms=tuple(args.offsets),
        exact_timing=args.exact_timing,
        min_interruption_ms=args.min_interruption_ms,
        false_interruption_timeout_ms=args.false_interruption_timeout_ms,
        llm_profile=args.llm_profile,
        language=args.language,
        quiet=args.quiet,
    )
    try:
        result = run_bargein(opts)
    except (AudioFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    console = Console()
    for table in render_tables(result):
        console.print(table)
    console.print(done_when_line(result))
    console.print(f"wrote {opts.out_dir}/bargein.json, bargein.txt, bargein.png")
    if result.interrupted:
        console.print("interrupted: outputs hold the scenarios done so far")
        return 130
    return 0
