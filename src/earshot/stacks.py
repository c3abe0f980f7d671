"""Named sets of stage backends (``--stack``), and the ``--stt/--llm/--tts`` flags that refine them.

* ``fast``: pocketsphinx + scripted LLM (simulated) + espeak-ng; core install.
* ``neural``: Whisper tiny.en + scripted LLM (simulated) + Piper en_US-joe-medium; extra
  ``neural`` (wheels only).
* ``local``: Whisper tiny.en + llama.cpp SmolLM2-135M + Piper; extra ``local`` (builds
  llama.cpp from source). No stage simulated.

An explicit ``--stt``, ``--llm`` or ``--tts`` overrides its stage of the stack. Without
``--stack`` the stages default to the ``fast`` stack's. `add_model_arguments` adds the whole
model option group (stack, stages and their options) that ``earshot converse`` and
``earshot serve`` share; `model_options` reads it back.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earshot.llm import LLM_KINDS, LlmKind
from earshot.stt import STT_NAMES
from earshot.tts import BACKENDS as TTS_NAMES


@dataclass(frozen=True, slots=True)
class Stack:
    """One backend name per model stage."""

    stt: str
    llm: LlmKind
    tts: str


STACKS: dict[str, Stack] = {
    "fast": Stack("pocketsphinx", "scripted", "espeak"),
    "neural": Stack("whisper", "scripted", "piper"),
    "local": Stack("whisper", "local", "piper"),
}
"""The ``--stack`` presets."""

DEFAULT_STACK = "fast"
"""What stages default to without ``--stack`` (light: no optional extra needed)."""


def resolve_stack(
    stack: str | None, stt: str | None = None, llm: str | None = None, tts: str | None = None
) -> Stack:
    """The backends for a ``--stack`` preset refined by explicit per-stage choices.

    Raises:
        ValueError: an unknown stack or backend name (the message lists the choices).
    """
    name = stack or DEFAULT_STACK
    if name not in STACKS:
        raise ValueError(f"unknown stack {name!r}; choose one of {', '.join(STACKS)}")
    base = STACKS[name]
    if stt is not None and stt not in STT_NAMES:
        raise ValueError(f"unknown STT backend {stt!r}; choose one of {', '.join(STT_NAMES)}")
    if tts is not None and tts not in TTS_NAMES:
        raise ValueError(f"unknown TTS backend {tts!r}; choose one of {', '.join(TTS_NAMES)}")
    kind: LlmKind = base.llm
    if llm is not None:
        if llm not in LLM_KINDS:
            raise ValueError(f"unknown LLM backend {llm!r}; choose one of {', '.join(LLM_KINDS)}")
        kind = next(k for k in LLM_KINDS if k == llm)
    return Stack(stt or base.stt, kind, tts or base.tts)


def add_stack_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    extra_stacks: Mapping[str, str] | None = None,
) -> None:
    """Add ``--stack``, ``--stt`` and ``--tts`` (``--llm`` is the caller's: it has options).

    Args:
        parser: where to add them.
        extra_stacks: further ``--stack`` choices the command handles itself (name → help),
            e.g. ``earshot serve``'s ``fake``.
    """
    extra = dict(extra_stacks or {})
    extra_help = "".join(f", {name} = {text}" for name, text in extra.items())
    parser.add_argument(
        "--stack",
        choices=sorted(STACKS) + sorted(extra),
        help="model backends as a set: fast = pocketsphinx + scripted LLM + espeak-ng (the "
        "default), neural = Whisper + scripted LLM + Piper, local = Whisper + llama.cpp + "
        f"Piper (no simulated stage){extra_help}",
    )
    parser.add_argument("--stt", choices=STT_NAMES, help="STT backend (overrides --stack)")
    parser.add_argument("--tts", choices=TTS_NAMES, help="TTS backend (overrides --stack)")


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """The backends of every stage and their options, as the model flags chose them.

    Attributes:
        stack: the backend name per stage.
        stt_model: whisper only — a CTranslate2 model directory; None: the bundled tiny.en.
        llm_options: keyword arguments of `earshot.llm.make_llm` for ``stack.llm``.
        tts_voice: an espeak-ng voice name, or a Piper ``.onnx`` voice file for piper.
    """

    stack: Stack = field(default_factory=lambda: STACKS[DEFAULT_STACK])
    stt_model: Path | None = None
    llm_options: dict[str, Any] = field(default_factory=dict)
    tts_voice: str = "en-us"


def add_model_arguments(
    parser: argparse.ArgumentParser, extra_stacks: Mapping[str, str] | None = None
) -> None:
    """Add the model flags ``earshot converse`` and ``earshot serve`` share: ``--stack``,
    ``--stt/--llm/--tts`` and ``--stt-model``, ``--llm-rules``, ``--llm-profile``,
    ``--llm-base-url``, ``--llm-model``, ``--tts-voice``; read them with `model_options`."""
    from earshot.llm.scripted import DEFAULT_PROFILE, PROFILES
    from earshot.options import http_url, number

    add_stack_arguments(parser, extra_stacks)
    parser.add_argument(
        "--stt-model", type=Path, help="whisper: a CTranslate2 Whisper model directory"
    )
    parser.add_argument(
        "--llm",
        choices=LLM_KINDS,
        help="scripted (offline, simulated timing), an OpenAI-compatible server, or local "
        "(llama.cpp in-process); overrides --stack",
    )
    parser.add_argument("--llm-rules", type=Path, help="rules file for the scripted LLM")
    parser.add_argument(
        "--llm-profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        help="latency profile of the scripted LLM: time to first token from published provider "
        f"figures, cited in earshot.llm.scripted (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--llm-base-url",
        type=http_url,
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (checked at start-up)",
    )
    parser.add_argument(
        "--llm-model",
        help="openai: the server's model name; local: a GGUF file (default: bundled SmolLM2)",
    )
    parser.add_argument(
        "--llm-connect-timeout-ms",
        type=number(0, 600_000, lo_open=True),
        default=2000.0,
        help="OpenAI-compatible LLM: time to open the connection (default 2000)",
    )
    parser.add_argument(
        "--llm-first-token-timeout-ms",
        type=number(0, 600_000, lo_open=True),
        default=5000.0,
        help="OpenAI-compatible LLM: request to first token (default 5000)",
    )
    parser.add_argument(
        "--llm-inter-token-timeout-ms",
        type=number(0, 600_000, lo_open=True),
        default=2000.0,
        help="OpenAI-compatible LLM: longest gap between streamed tokens (default 2000)",
    )
    parser.add_argument(
        "--tts-voice", default="en-us", help="espeak-ng voice, or a Piper .onnx voice for piper"
    )


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The `ModelOptions` of flags added by `add_model_arguments`.

    Raises:
        ValueError: an unknown stack or backend, or ``--llm openai`` without
            ``--llm-base-url`` (the message names the fix).
    """
    stack = resolve_stack(args.stack, args.stt, args.llm, args.tts)
    llm_options: dict[str, Any]
    if stack.llm == "scripted":
        llm_options = {"rules_path": args.llm_rules, "profile": args.llm_profile}
    elif stack.llm == "local":
        llm_options = {"model_path": args.llm_model}
    else:
        if not args.llm_base_url:
            raise ValueError("--llm openai needs --llm-base-url (e.g. http://127.0.0.1:8000/v1)")
        from earshot.llm import LlmTimeouts

        llm_options = {
            "base_url": args.llm_base_url,
            "model": args.llm_model or "default",
            "timeouts": LlmTimeouts(
                connect_ms=args.llm_connect_timeout_ms,
                first_token_ms=args.llm_first_token_timeout_ms,
                inter_token_ms=args.llm_inter_token_timeout_ms,
            ),
        }
    return ModelOptions(stack, args.stt_model, llm_options, args.tts_voice)
