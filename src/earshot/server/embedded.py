"""The server's stacks: ``embedded`` (the real offline defaults) and ``fake`` (orchestration).

* `EmbeddedStack` — the same backends as ``earshot converse``: Silero VAD, pocketsphinx
  streaming STT, the scripted LLM (labelled simulated) or any OpenAI-compatible server,
  espeak-ng streaming TTS. No AEC in the engine: browsers cancel their own echo.
* `FakeStack` — the shipped fakes of `earshot.testing` (energy VAD, scripted STT/LLM/TTS): no
  inference, so a load test measures the orchestration alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earshot.clock import Clock
from earshot.server.gil import SlicedRecognizer
from earshot.server.session_stack import SessionParts, SessionStack
from earshot.session.config import SessionConfig
from earshot.turns.bargein import BargeInConfig


class EmbeddedStack(SessionStack):
    """Real offline components per call (see the module docstring).

    Args:
        config: session settings.
        vad: ``silero`` or ``webrtc``.
        endpointer: ``fixed`` or ``smart``; ``eot_silence_ms`` for the fixed one.
        llm: ``scripted`` or ``openai`` with ``llm_options`` as for `earshot.llm.make_llm`.
        bargein: barge-in thresholds, None to disable.
    """

    name = "embedded"

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        vad: str = "silero",
        endpointer: str = "fixed",
        eot_silence_ms: float = 500.0,
        llm: str = "scripted",
        llm_options: dict[str, Any] | None = None,
        bargein: BargeInConfig | None = None,
        budget_preset: str = "1.5s",
    ) -> None:
        super().__init__(config, budget_preset)
        self.vad_name = vad
        self.endpointer_name = endpointer
        self.eot_silence_ms = eot_silence_ms
        self.llm_name = llm
        self.llm_options = llm_options or {}
        self.bargein = bargein if bargein is not None else BargeInConfig()

    def build_parts(self, clock: Clock) -> SessionParts:
        from earshot.converse import ConverseOptions, build_components, describe_components

        opts = ConverseOptions(
            input_path=Path("-"),
            out_dir=Path("-"),
            session=self.config,
            vad=self.vad_name,
            endpointer=self.endpointer_name,
            eot_silence_ms=self.eot_silence_ms,
            llm=self.llm_name,  # type: ignore[arg-type]
            llm_options=self.llm_options,
            bargein=self.bargein,
        )
        parts = build_components(opts, clock)
        components = describe_components(parts, clock)
        components.pop("transport", None)
        components["echo"] = "the caller's device (browser echo cancellation)"
        components["aec"] = "off in the engine (no far-end reference over the network)"
        return SessionParts(
            vad=parts["vad"],
            stt=SlicedRecognizer(parts["stt"]),
            llm=parts["llm"],
            tts=parts["tts"],
            endpointer=parts["endpointer"],
            bargein=parts["bargein"],
            components=components,
        )


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
