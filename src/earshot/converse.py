"""`earshot converse`: run a full streaming agent against a recorded caller and account for it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earshot.clock import Clock, SimulatedClock, SystemClock
from earshot.echo.aec import create_echo_canceller
from earshot.echo.path import EchoPath, MicMixer, NoiseLoop
from earshot.llm import LlmKind, describe_llm, make_llm
from earshot.metrics.budget import TermBudget, load_budget
from earshot.metrics.plot import plot_latency
from earshot.metrics.progress import ConverseProgress
from earshot.metrics.report import TurnLog, write_report_md
from earshot.metrics.stats import summarize
from earshot.metrics.turn import TurnRecord
from earshot.session.config import SessionConfig
from earshot.session.session import Session, SessionState
from earshot.stt import describe_stt, make_stt
from earshot.transports.file import FileTransport, SoundFileSource, WavRecorder
from earshot.tts import describe_tts, make_tts
from earshot.turns.bargein import BargeInConfig
from earshot.turns.factory import make_endpointer
from earshot.vad import make_vad


@dataclass(slots=True)
class ConverseOptions:
    """Everything `earshot converse` takes (the CLI's flags)."""

    input_path: Path
    out_dir: Path
    session: SessionConfig = field(default_factory=SessionConfig)
    vad: str = "silero"
    endpointer: str = "fixed"
    eot_silence_ms: float = 500.0
    endpointing_rules: Path | None = None
    endpointing_dynamic: bool = False
    endpointing_acoustic: bool | None = None
    eot_threshold: float | None = None
    stt: str = "pocketsphinx"
    stt_model: Path | None = None
    stt_options: dict[str, Any] = field(default_factory=dict)
    """Extra constructor arguments of the STT backend (e.g. ``early_final=False``)."""
    llm: LlmKind = "scripted"
    llm_options: dict[str, Any] = field(default_factory=dict)
    tts: str = "espeak"
    tts_voice: str = "en-us"
    tts_options: dict[str, Any] = field(default_factory=dict)
    """Extra constructor arguments of the TTS backend (e.g. ``first_clause=False``)."""
    budget_path: Path | None = None
    budget_preset: str = "1.5s"
    simulated_clock: bool = False
    quiet: bool = False
    bargein: BargeInConfig | None = field(default_factory=BargeInConfig)
    echo: EchoOptions | None = None
    aec: bool = False


@dataclass(frozen=True, slots=True)
class EchoOptions:
    """The file transport's acoustic echo path (a simulated speakerphone room).

    Attributes:
        echo: feed the agent's output back into the microphone (False: noise only).
        delay_ms, decay_ms, gain_db: the room response (see `earshot.echo.path.EchoPath`).
        noise_path: background noise recording mixed into the microphone (looped), or None.
        noise_dbfs: level of that noise (dBFS RMS).
    """

    echo: bool = True
    delay_ms: float = 40.0
    decay_ms: float = 150.0
    gain_db: float = -6.0
    noise_path: Path | None = None
    noise_dbfs: float = -45.0

    def mixer(self) -> MicMixer:
        """The microphone mixer for this room."""
        noise = (
            NoiseLoop.from_file(self.noise_path, self.noise_dbfs)
            if self.noise_path is not None
            else None
        )
        path = (
            EchoPath(delay_ms=self.delay_ms, decay_ms=self.decay_ms, gain_db=self.gain_db)
            if self.echo
            else None
        )
        return MicMixer(echo_path=path, noise=noise)


@dataclass(slots=True)
class ConverseResult:
    state: SessionState
    out_dir: Path
    components: dict[str, str]
    interrupted: bool = False


def build_components(opts: ConverseOptions, clock: Clock) -> dict[str, Any]:
    """The stage backends for these options (models load here, before the clock starts)."""
    parts = {
        "vad": make_vad(opts.vad),
        "stt": make_stt(opts.stt, **_stt_options(opts, clock)),
        "llm": make_llm(opts.llm, clock=clock, **opts.llm_options),
        "tts": make_tts(opts.tts, **_tts_options(opts), **opts.tts_options),
        "endpointer": make_endpointer(
            opts.endpointer,
            silence_ms=opts.eot_silence_ms,
            rules_path=opts.endpointing_rules,
            dynamic=opts.endpointing_dynamic,
            acoustic=opts.endpointing_acoustic,
            threshold=opts.eot_threshold,
            now_ms=clock.now_ms if opts.endpointer == "model" else None,
        ),
        "aec": create_echo_canceller(True) if opts.aec else None,
        "mic": opts.echo.mixer() if opts.echo is not None else None,
        "bargein": opts.bargein,
    }
    for stage in ("stt", "llm", "tts"):
        load = getattr(parts[stage], "load", None)
        if callable(load):
            load()
    return parts


def _stt_options(opts: ConverseOptions, clock: Clock) -> dict[str, Any]:
    options: dict[str, Any] = dict(opts.stt_options)
    if opts.stt == "whisper":
        options.setdefault("clock", clock)
        if opts.stt_model is not None:
            options["model_path"] = opts.stt_model
    return options


def _tts_options(opts: ConverseOptions) -> dict[str, Any]:
    """``--tts-voice`` is an espeak-ng voice name, or a Piper ``.onnx`` voice file for piper."""
    if opts.tts == "piper":
        default = opts.tts_voice in ("", "en-us")
        return {} if default else {"voice_path": Path(opts.tts_voice)}
    return {"voice": opts.tts_voice}


def close_components(parts: dict[str, Any]) -> None:
    """Stop the worker threads backends own (the Whisper decoder)."""
    for stage in ("stt", "llm", "tts"):
        close = getattr(parts.get(stage), "close", None)
        if callable(close):
            close()


def session_from_parts(
    config: SessionConfig,
    clock: Clock,
    parts: dict[str, Any],
    *,
    on_turn: Callable[[TurnRecord], None] | None = None,
    on_tick: Callable[[float, SessionState], None] | None = None,
) -> Session:
    """A `Session` wired from `build_components` output (parts may be swapped, e.g. wrapped)."""
    return Session(
        config,
        clock,
        parts["vad"],
        parts["stt"],
        parts["llm"],
        parts["tts"],
        parts["endpointer"],
        bargein=parts["bargein"],
        aec=parts["aec"],
        on_turn=on_turn,
        on_tick=on_tick,
    )


def describe_components(parts: dict[str, Any], clock: Clock) -> dict[str, str]:
    """Stage → backend description, saying which parts are real and which simulated."""
    return {
        "clock": "simulated (virtual time, compute charged)" if clock.simulated else "real time",
        "transport": "file: a real recording paced in real or virtual time; network terms 0",
        "vad": f"{parts['vad'].name} (real)",
        "end-of-turn": f"{parts['endpointer'].name} endpointer (real)",
        "stt": f"{describe_stt(parts['stt'])} (real)",
        "llm": describe_llm(parts["llm"]),
        "tts": f"{describe_tts(parts['tts'])} (real)",
        "echo": _describe_room(parts["mic"]),
        "aec": "WebRTC AEC3 (aec-audio-processing, real)" if parts["aec"] else "off",
        "barge-in": "on (real)" if parts["bargein"] is not None else "off",
    }


def _describe_room(mic: MicMixer | None) -> str:
    if mic is None:
        return "off"
    parts = ["simulated room:"]
    if mic.echo_path is not None:
        parts.append("echo path")
    if mic.noise is not None:
        parts.append("+ background noise" if mic.echo_path is not None else "background noise")
    return " ".join(parts)


def converse(opts: ConverseOptions) -> ConverseResult:
    """Run the conversation and write ``conversation.wav``, ``turns.jsonl``, ``report.md``
    and ``latency.png`` into ``opts.out_dir``.

    Files for the turns done so far are written even if the run is interrupted (Ctrl-C).

    Raises:
        AudioFileError: the input recording cannot be used.
        ValueError: a bad option (the message names it).
    """
    source = SoundFileSource(opts.input_path)  # streamed: checked here, read as it plays
    budget: TermBudget = load_budget(opts.budget_path, preset=opts.budget_preset)
    clock: Clock = SimulatedClock() if opts.simulated_clock else SystemClock()
    parts = build_components(opts, clock)
    components = describe_components(parts, clock)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    log = TurnLog(out / "turns.jsonl")
    progress = ConverseProgress(source.duration_ms, quiet=opts.quiet)

    def on_turn(turn: TurnRecord) -> None:
        log.append(turn)

    session_holder: list[Session] = []
    mic = parts["mic"]
    recorder = WavRecorder(out / "conversation.wav", out / "mic.wav" if mic is not None else None)
    transport = FileTransport(
        source, clock, mic=mic, recorder=recorder, max_tail_ms=opts.session.max_tail_ms
    )

    async def main() -> SessionState:
        if isinstance(clock, SystemClock):
            clock.reset_origin()
        session = session_from_parts(
            opts.session,
            clock,
            parts,
            on_turn=on_turn,
            on_tick=lambda t_ms, st: progress.update(t_ms, st.turns),
        )
        session_holder.append(session)
        return await session.run(transport)

    interrupted = False
    state = SessionState()
    try:
        with progress:
            state = clock.run(main)
    except KeyboardInterrupt:
        interrupted = True
        if session_holder:
            state = session_holder[0].state
    finally:
        recorder.close()
        source.close()
        if session_holder:
            session_holder[0].close_open_turns()  # unfinished turns reach turns.jsonl too
            state = session_holder[0].state
        log.close()
        close_components(parts)
        _write_outputs(out, state, budget, components, opts, interrupted)
    return ConverseResult(state, out, components, interrupted)


def _write_outputs(
    out: Path,
    state: SessionState,
    budget: TermBudget,
    components: dict[str, str],
    opts: ConverseOptions,
    interrupted: bool,
) -> None:
    turns = [t for t in state.turns if t.complete]
    summary = summarize(state.turns)
    run_info = {
        "input": os.fspath(opts.input_path),
        "frame_ms": opts.session.frame_ms,
        "eot_silence_ms": opts.eot_silence_ms,
        "endpointer": opts.endpointer,
        "jitter_ms": opts.session.jitter_ms,
        "interrupted": interrupted,
    }
    write_report_md(out / "report.md", state.turns, summary, budget, components, run_info)
    if turns:
        plot_latency(out / "latency.png", state.turns, budget)
