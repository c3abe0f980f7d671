"""The language model interface: a streamed chat completion."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for (OpenAI-style function calling).

    Attributes:
        id: the call's id (echoed back in the ``tool`` message with its result).
        name: the tool's name.
        arguments: the arguments as the model wrote them, JSON text.
    """

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation history.

    ``interrupted`` marks an assistant turn cut off by barge-in: its ``content`` is then only
    the words the user heard. An assistant message that asked for tools carries them in
    ``tool_calls``; a ``tool`` message carries one result, for ``tool_call_id``.
    """

    role: Role
    content: str
    interrupted: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""


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
