"""The conversation: turns, history, what the caller heard, and what a barge-in means.

Synchronous and clock-free: the session feeds it decisions with their times and it keeps the
records. It never touches audio or tasks; where a barge-in resolution means "resume the reply",
it returns a `Resume` for the session to start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from earshot.llm.base import ChatMessage
from earshot.metrics.turn import BargeInRecord, TurnRecord
from earshot.session.response import ResponseHandle
from earshot.tts.heard import resume_text
from earshot.turns.bargein import (
    Backchannel,
    BargeInDetected,
    BargeInResolution,
    InterruptionConfirmed,
    reaction_ms,
)


@dataclass(frozen=True, slots=True)
class Resume:
    """Resume an interrupted reply from its first unheard word.

    Attributes:
        turn: the turn the reply belongs to.
        text: what remains to be said.
        heard_prefix: what the caller heard before the stop.
        generated_text: the whole reply as generated.
    """

    turn: TurnRecord
    text: str
    heard_prefix: str
    generated_text: str


@dataclass(slots=True)
class _Stopped:
    handle: ResponseHandle
    played_samples: int
    record: BargeInRecord


@dataclass(slots=True)
class Conversation:
    """Turn records and chat history of one call.

    Attributes:
        turns: answered turns in order (a false end-of-turn's two halves are one turn).
        history: the chat history given to the LLM.
        barge_ins: every barge-in record, in order (also in its turn's ``barge_ins``).
        on_turn: called once per turn when its reply is over (or, at shutdown, unfinished).
    """

    turns: list[TurnRecord] = field(default_factory=list)
    history: list[ChatMessage] = field(default_factory=list)
    barge_ins: list[BargeInRecord] = field(default_factory=list)
    on_turn: Callable[[TurnRecord], None] | None = None
    _stopped: _Stopped | None = None
    _continued: TurnRecord | None = None
    _reported: dict[int, TurnRecord] = field(default_factory=dict)

    @property
    def interruption_pending(self) -> bool:
        """A reply was stopped by a barge-in that is not resolved yet."""
        return self._stopped is not None

    def answer(self, turn: TurnRecord, text: str) -> None:
        """Number the turn and add the caller's words to the history.

        After a false end-of-turn (the caller went on before hearing a word of the reply), the
        continuation joins the earlier turn: one turn, one user message, and the false end is
        kept in ``extra["false_end_of_turn_ms"]``.
        """
        prev, self._continued = self._continued, None
        if prev is not None and prev in self.turns:
            text = f"{prev.user_text} {text}".strip()
            turn.turn = prev.turn
            turn.extra["false_end_of_turn_ms"] = prev.marks_ms.get("end_of_turn")
            turn.barge_ins = list(prev.barge_ins)
            self.turns[self.turns.index(prev)] = turn
            for i in range(len(self.history) - 1, -1, -1):
                if self.history[i].role == "user":
                    del self.history[i]
                    break
        else:
            turn.turn = len(self.turns) + 1
            self.turns.append(turn)
        turn.user_text = text
        self.history.append(ChatMessage("user", text))

    def complete(self, handle: ResponseHandle, played: int, interrupted: bool = False) -> None:
        """The agent's reply to a turn is over: record what was heard, update history.

        A turn whose reply ended before it was answered (its response failed before the
        transcript was in) is answered here first, so it is numbered and written, never lost.
        """
        turn = handle.turn
        if not any(t is turn for t in self.turns):
            self.answer(turn, turn.user_text)
        turn.agent_text = handle.generated_text.strip()
        turn.heard_text = handle.heard_text(played)
        turn.interrupted = interrupted
        turn.extra["played_samples"] = turn.extra.get("played_samples", 0) + played
        content = turn.heard_text if interrupted else turn.agent_text
        if content:  # a reply cut off before a word was heard leaves nothing to remember
            self.history.append(ChatMessage("assistant", content, interrupted))
        self._report(turn)

    def stopped(
        self,
        handle: ResponseHandle,
        detection: BargeInDetected,
        played: int,
        stopped_at_ms: float,
        last_agent_sample_ms: float | None,
    ) -> BargeInRecord:
        """A barge-in stopped ``handle`` after ``played`` samples; keep it pending."""
        record = BargeInRecord(
            user_onset_ms=detection.onset_ms,
            detected_ms=detection.detected_ms,
            stopped_at_ms=stopped_at_ms,
            last_agent_sample_ms=last_agent_sample_ms,
            reaction_ms=(
                None
                if last_agent_sample_ms is None
                else reaction_ms(detection.onset_ms, last_agent_sample_ms)
            ),
            while_state="playing" if played else "preparing",
            heard_words=len(handle.heard_text(played).split()) - len(handle.heard_prefix.split()),
            generated_words=len(handle.generated_text.split()),
        )
        self.barge_ins.append(record)
        handle.turn.barge_ins.append(record)
        self._stopped = _Stopped(handle, played, record)
        return record

    def settle(self, resolution: BargeInResolution) -> tuple[ResponseHandle, Resume | None] | None:
        """Resolve the pending stop: keep the reply cut at the heard words, or resume it.

        Returns:
            None if nothing was pending; else the stopped handle and a `Resume` when the
            reply is to go on (a false interruption or a backchannel with words left).
        """
        stopped, self._stopped = self._stopped, None
        if stopped is None:
            return None
        handle, played, record = stopped.handle, stopped.played_samples, stopped.record
        if isinstance(resolution, InterruptionConfirmed):
            record.resolution = "confirmed"
            if not handle.heard_text(played):
                # Not a word of the reply was heard: the caller paused and went on, so this is
                # still their turn (the end-of-turn was false); `answer` merges the two.
                record.resolution = "continued"
                self._continued = handle.turn
                return handle, None
            self.complete(handle, played, interrupted=True)
            return handle, None
        record.resolution = (
            "backchannel" if isinstance(resolution, Backchannel) else "false_interruption"
        )
        turn = handle.turn
        turn.extra["resumes"] = turn.extra.get("resumes", 0) + 1
        remainder = resume_text(handle.generated_text, handle.words, played)
        heard_so_far = handle.heard_text(played)
        turn.extra["played_samples"] = turn.extra.get("played_samples", 0) + played
        if not remainder.strip():  # every word had been heard: nothing to resume
            handle.heard_prefix, handle.words = heard_so_far, []
            self.complete(handle, 0)
            return handle, None
        return handle, Resume(turn, remainder, heard_so_far, handle.generated_text)

    def close_unfinished(self, open_handles: list[ResponseHandle]) -> list[TurnRecord]:
        """At the end of the run: report every turn not reported yet as unfinished (a turn whose
        end was decided but which was not answered yet included).

        Args:
            open_handles: responses still pending or playing (their played positions as the
                transport last reported them).

        Returns:
            The turns written as unfinished.
        """
        latest: dict[int, ResponseHandle] = {}
        for h in open_handles:
            latest[id(h.turn)] = h
            if not any(t is h.turn for t in self.turns):
                # The end of turn was decided but the run ended before it was answered (the
                # caller hung up, Ctrl-C): it is still a turn of this call, numbered and written.
                self.answer(h.turn, h.turn.user_text)
        stopped = self._stopped
        if stopped is not None:
            latest.setdefault(id(stopped.handle.turn), stopped.handle)
        closed: list[TurnRecord] = []
        for turn in self.turns:
            if id(turn) in self._reported:
                continue
            turn.unfinished = True
            handle = latest.get(id(turn))
            if handle is not None:
                played = (
                    stopped.played_samples
                    if stopped is not None and stopped.handle is handle
                    else handle.played_samples
                )
                turn.agent_text = handle.generated_text.strip()
                turn.heard_text = handle.heard_text(played)
                turn.extra["played_samples"] = turn.extra.get("played_samples", 0) + played
            closed.append(turn)
            self._report(turn)
        return closed

    def _report(self, turn: TurnRecord) -> None:
        if id(turn) in self._reported:
            return
        self._reported[id(turn)] = turn  # kept alive, so ids stay unique
        if self.on_turn is not None:
            self.on_turn(turn)
