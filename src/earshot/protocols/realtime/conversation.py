"""The Realtime conversation: ordered items, their transcripts, truncation to what was heard."""

from __future__ import annotations

from dataclasses import dataclass, field

from earshot.audio.frames import SAMPLE_RATE_HZ
from earshot.llm.base import ChatMessage
from earshot.protocols.realtime.events import ContentPart, Item
from earshot.tts.base import WordTiming
from earshot.tts.heard import heard_text

SAMPLES_PER_MS = SAMPLE_RATE_HZ // 1000


class ConversationError(ValueError):
    """A client event names an item that cannot take it; ``code``/``param`` for the error."""

    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(slots=True)
class ItemState:
    """An item and what earshot knows about it beyond the wire shape.

    Attributes:
        item: the wire item (its transcript is kept up to date).
        words: assistant audio: word timings in 16 kHz samples from the item's first sample.
        audio_samples: assistant audio: samples (16 kHz) produced so far.
        marks_ms: user audio item: ``speech_end``, ``end_of_turn``, ``stt_final``.
        truncated: the transcript was cut to the words heard.
        full_text: assistant: everything generated, before any truncation.
    """

    item: Item
    words: list[WordTiming] = field(default_factory=list)
    audio_samples: int = 0
    marks_ms: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    full_text: str = ""

    @property
    def text(self) -> str:
        """The item's words: text parts and audio transcripts, joined."""
        parts = [p.text or p.transcript or "" for p in self.item.content]
        return " ".join(p for p in parts if p).strip()


class Conversation:
    """Items in order; ids are unique."""

    def __init__(self) -> None:
        self._items: list[ItemState] = []

    def __contains__(self, item_id: str) -> bool:
        return any(s.item.id == item_id for s in self._items)

    def get(self, item_id: str, param: str = "item_id") -> ItemState:
        """The item with this id.

        Raises:
            ConversationError: no such item (code ``item_not_found``).
        """
        for state in self._items:
            if state.item.id == item_id:
                return state
        raise ConversationError(f"Item with item_id not found: {item_id}", param, "item_not_found")

    def last_id(self) -> str | None:
        return self._items[-1].item.id if self._items else None

    def add(self, state: ItemState, previous_item_id: str | None = None) -> str | None:
        """Insert after ``previous_item_id`` ("root": first; None: last).

        Returns:
            The id of the item now before it (None at the start).

        Raises:
            ConversationError: the id is taken, or ``previous_item_id`` does not exist.
        """
        item_id = state.item.id or ""
        if item_id in self:
            raise ConversationError(
                f"Duplicate item id: {item_id} is already in the conversation", "item.id"
            )
        if previous_item_id is None:
            before = self.last_id()
            self._items.append(state)
            return before
        if previous_item_id == "root":
            self._items.insert(0, state)
            return None
        index = self._items.index(self.get(previous_item_id, "previous_item_id"))
        self._items.insert(index + 1, state)
        return previous_item_id

    def delete(self, item_id: str) -> None:
        """Remove an item.

        Raises:
            ConversationError: no such item.
        """
        self._items.remove(self.get(item_id))

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> ItemState:
        """Cut an assistant audio item to its first ``audio_end_ms`` ms: the transcript keeps
        only the words whose audio ended by then (`earshot.tts.heard.heard_text`).

        Raises:
            ConversationError: unknown item, not assistant audio, wrong content index, or
                ``audio_end_ms`` beyond the audio produced.
        """
        state = self.get(item_id)
        item = state.item
        if item.role != "assistant":
            raise ConversationError("Only assistant messages can be truncated", "item_id")
        audio_parts = [i for i, p in enumerate(item.content) if p.type == "output_audio"]
        if not audio_parts:
            raise ConversationError(f"Item {item_id} has no audio to truncate", "item_id")
        if content_index not in audio_parts:
            raise ConversationError(
                f"content_index {content_index} is not an audio part of {item_id} "
                f"(audio is at {audio_parts[0]})",
                "content_index",
            )
        duration_ms = state.audio_samples / SAMPLES_PER_MS
        if audio_end_ms > duration_ms + 1.0:
            raise ConversationError(
                f"audio_end_ms {audio_end_ms} is beyond the item's audio "
                f"({duration_ms:.0f} ms); send a position within it",
                "audio_end_ms",
            )
        played = min(audio_end_ms * SAMPLES_PER_MS, state.audio_samples)
        part = item.content[content_index]
        part.transcript = heard_text(state.words, played)
        state.truncated = True
        item.status = "incomplete"
        return state

    def messages(self, instructions: str) -> list[ChatMessage]:
        """The chat history for the LLM: the instructions, then every item with words."""
        out = [ChatMessage("system", instructions)] if instructions else []
        for state in self._items:
            text = state.text
            if not text or state.item.status == "in_progress":
                continue
            out.append(ChatMessage(state.item.role, text, interrupted=state.truncated))
        return out


def text_part(kind: str, text: str) -> ContentPart:
    """A text content part of ``kind`` (``input_text``, ``output_text``)."""
    return ContentPart(type=kind, text=text)  # type: ignore[arg-type]
