"""`earshot eval bargein`: its options, constants and run record (the model; imports nothing
from the other bargein modules). The evaluation itself is described in `earshot.evals.bargein`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earshot.evals.bargein_scenarios import BACKCHANNEL_VOICE

DEFAULT_OFFSETS_MS: tuple[float, ...] = (500.0, 1500.0, 3000.0, 5000.0)
"""Where events land after the reply's first played sample (ms)."""

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


@dataclass(frozen=True, slots=True)
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
        planned: how many scenarios the plan holds.
        results: one dict per scenario run so far (see `score_scenario`).
        components: stage → backend, saying which parts are real and which simulated.
        reply_text: the long scripted reply the events cut into.
        reply_ms: its duration as synthesized (ms).
        interrupted: stopped by Ctrl-C before every scenario ran.
        summary: `earshot.evals.bargein_summary.summarize_results` of ``results``.
    """

    options: BargeInOptions
    planned: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)
    reply_text: str = ""
    reply_ms: float = 0.0
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


def components(opts: BargeInOptions) -> dict[str, str]:
    """Stage → backend, saying which parts are real and which simulated."""
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
