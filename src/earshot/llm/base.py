"""The language model interface: a streamed chat completion."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation history.

    ``interrupted`` marks an assistant turn cut off by barge-in: its ``content`` is then only
    the words the user heard.
    """

    role: Role
    content: str
    interrupted: bool = False


class LlmError(Exception):
    """The LLM failed (time-out, HTTP error, malformed stream). The message says which."""


class LanguageModel(Protocol):
    """A streaming chat model."""

    name: str
    simulated: bool
    """True when replies are scripted rather than generated (reports must say so)."""

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yield text deltas of the reply as they arrive.

        Raises:
            LlmError: on time-out, transport or protocol failure.
        """
        ...
