"""earshot.llm: streamed chat models.

Three backends: `ScriptedLLM` (offline, simulated — replies from a rules file, timing from a
provider latency profile), `OpenAICompatLLM` (any OpenAI-compatible streaming server) and
`earshot.llm.local.LocalLLM` (llama.cpp in-process, extra ``local-llm``). `make_llm` builds
any of them from command-line style options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from earshot.clock import Clock
from earshot.llm.base import ChatMessage, LanguageModel, LlmError
from earshot.llm.openai_compat import (
    DEFAULT_SYSTEM_PROMPT,
    FALLBACK_LINE,
    LlmTimeouts,
    OpenAICompatLLM,
)
from earshot.llm.scripted import (
    DEFAULT_PROFILE,
    PROFILES,
    LatencyProfile,
    RulesError,
    RuleSet,
    ScriptedLLM,
    load_rules,
)

LlmKind = Literal["scripted", "openai", "local"]
LLM_KINDS: tuple[LlmKind, ...] = ("scripted", "openai", "local")
"""Names `make_llm` accepts."""

__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_SYSTEM_PROMPT",
    "FALLBACK_LINE",
    "LLM_KINDS",
    "PROFILES",
    "ChatMessage",
    "LanguageModel",
    "LatencyProfile",
    "LlmError",
    "LlmKind",
    "LlmTimeouts",
    "OpenAICompatLLM",
    "RuleSet",
    "RulesError",
    "ScriptedLLM",
    "describe_llm",
    "load_rules",
    "make_llm",
]


def make_llm(
    kind: LlmKind,
    clock: Clock,
    *,
    rules_path: str | Path | None = None,
    profile: str | LatencyProfile = DEFAULT_PROFILE,
    seed: int = 0,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeouts: LlmTimeouts | None = None,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    model_path: str | Path | None = None,
) -> LanguageModel:
    """Build an LLM backend.

    Args:
        kind: ``"scripted"`` (offline, simulated), ``"openai"`` (an OpenAI-compatible server)
            or ``"local"`` (llama.cpp in-process; extra ``local-llm``).
        clock: the session clock.
        rules_path: scripted only — rules YAML; None uses the bundled demo rules.
        profile: scripted only — a `PROFILES` name or a `LatencyProfile`.
        seed: scripted only — reply rotation and jitter seed.
        base_url: openai only, required — e.g. ``http://127.0.0.1:8000/v1``.
        model: openai only, required — the server's model name.
        api_key: openai only — None reads ``EARSHOT_LLM_API_KEY`` / ``OPENAI_API_KEY``.
        timeouts: openai only — per-stage time-outs.
        system_prompt: openai and local — ``""`` sends none.
        temperature: openai only.
        max_tokens: openai only — None sends no cap.
        model_path: local only — a GGUF file; None uses the bundled SmolLM2-135M-Instruct.

    Raises:
        ValueError: unknown kind or profile, or a missing base URL or model for ``"openai"``.
        RulesError: the rules file is missing or invalid.
        ImportError: the local backend's packages are missing (the message names the extra).
    """
    if kind == "scripted":
        return ScriptedLLM(load_rules(rules_path), profile, clock, seed=seed)
    if kind == "openai":
        if not base_url:
            raise ValueError(
                "the openai LLM needs a server URL: set --llm-base-url "
                "(e.g. http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1 for Ollama)"
            )
        if not model:
            raise ValueError("the openai LLM needs a model name: set --llm-model")
        return OpenAICompatLLM(
            base_url,
            model,
            clock,
            api_key=api_key,
            timeouts=timeouts,
            system_prompt=system_prompt,
            temperature=temperature,
            max_tokens=max_tokens,
        )
    if kind == "local":
        from earshot.llm.local import LocalLLM

        return LocalLLM(clock, model_path, system_prompt=system_prompt, timeouts=timeouts)
    raise ValueError(f"unknown LLM kind {kind!r}; choose one of {', '.join(LLM_KINDS)}")


def describe_llm(llm: LanguageModel) -> str:
    """The backend, its model, and whether it is simulated, for reports."""
    model = getattr(llm, "model_name", None)
    label = f"{llm.name}, {model}" if isinstance(model, str) and model else llm.name
    return f"{label} ({'SIMULATED' if llm.simulated else 'real'})"
