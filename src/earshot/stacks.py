"""Named sets of stage backends (``--stack``), and the ``--stt/--llm/--tts`` flags that refine them.

* ``fast``: pocketsphinx + scripted LLM (simulated) + espeak-ng; core install.
* ``neural``: Whisper tiny.en + scripted LLM (simulated) + Piper en_US-joe-medium; extra
  ``neural`` (wheels only).
* ``local``: Whisper tiny.en + llama.cpp SmolLM2-135M + Piper; extra ``local`` (builds
  llama.cpp from source). No stage simulated.

An explicit ``--stt``, ``--llm`` or ``--tts`` overrides its stage of the stack. Without
``--stack`` the stages default to the ``fast`` stack's.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

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


def add_stack_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--stack``, ``--stt`` and ``--tts`` (``--llm`` is the caller's: it has options)."""
    parser.add_argument(
        "--stack",
        choices=sorted(STACKS),
        help="model backends as a set: fast = pocketsphinx + scripted LLM + espeak-ng (the "
        "default), neural = Whisper + scripted LLM + Piper, local = Whisper + llama.cpp + "
        "Piper (no simulated stage)",
    )
    parser.add_argument("--stt", choices=STT_NAMES, help="STT backend (overrides --stack)")
    parser.add_argument("--tts", choices=TTS_NAMES, help="TTS backend (overrides --stack)")
