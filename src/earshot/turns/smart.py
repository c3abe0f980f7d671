"""The smart end-pointer: a silence bound chosen from how the partial transcript ends.

A pure, clock-free policy (`earshot.turns.endpointer.Endpointer`). On every frame of a pause the
turn detector passes the silence so far and the streaming STT's partial transcript; the policy
reads the transcript's last words, picks the silence the turn needs (`required_silence_ms`) and
ends the turn once the silence reaches it. The rules are data (`endpointing_rules.py`, packaged
``data/endpointing/rules.yaml``):

* bounds: never before ``min``, always by ``max`` (§39.4.3 heuristic end-pointer: 200/800 ms);
* a complete-looking ending ends at the short ``complete`` bound, but only after that much
  continued silence, and never before the transcript has settled (``text_settle_ms``): the
  §39.4 Q3 pitfall ("What time is it... actually never mind") is a fast end taken before the
  silence has confirmed it;
* trailing hesitations ("um") and self-corrections ("actually", "wait") wait the maximum;
* words that cannot end an English sentence ("the", "to", "and") wait ``incomplete``;
* no transcript, or an ambiguous last word, waits ``base``.

The embedded recogniser (pocketsphinx) writes no punctuation, so "reads as complete" rests on
the last words; terminal/continuing punctuation is used when a recogniser writes it. The
transcript is read as it stands ``text_settle_ms`` into the pause: the recogniser needs a moment
to emit the last words spoken, but words it adds later, while the VAD hears silence, are
background noise decoded as speech (measured on the noise-mixed recordings with pocketsphinx,
which keeps adding words through the silence), so they are ignored.

Dynamic mode adapts the bounds to the pauses this user makes inside turns (see
`SmartEndpointer`); acoustic mode adds prosodic cues (`earshot.turns.acoustic`). A learned
classifier plugs into the same `Endpointer` protocol instead of this class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from earshot.turns.acoustic import AcousticCues, compute_cues, require_acoustic_backend
from earshot.turns.endpointer import PauseContext
from earshot.turns.endpointing_rules import EndpointingRules, Phrase, load_rules


class EndingKind(Enum):
    """How a partial transcript ends, from most to least patient."""

    SELF_CORRECTION = "self-correction"
    HESITATION = "hesitation"
    INCOMPLETE = "incomplete"
    UNCERTAIN = "uncertain"
    EMPTY = "empty"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class TextEnding:
    """The reading of a transcript's end.

    Attributes:
        kind: the class of ending.
        evidence: the word, phrase or punctuation mark that decided it ('' when empty).
        source: which rule matched (e.g. "final phrase", "terminal punctuation", "word").
    """

    kind: EndingKind
    evidence: str
    source: str

    def describe(self) -> str:
        """One phrase for logs and reports, e.g. "trailing hesitation 'um'"."""
        ev = self.evidence
        match self.kind:
            case EndingKind.SELF_CORRECTION:
                return f"self-correction '{ev}' (the turn goes on)"
            case EndingKind.HESITATION:
                return f"trailing hesitation '{ev}'"
            case EndingKind.INCOMPLETE if self.source == "continuing punctuation":
                return f"trailing '{ev}' (the sentence goes on)"
            case EndingKind.INCOMPLETE:
                return f"'{ev}' cannot end an English sentence"
            case EndingKind.UNCERTAIN:
                return f"'{ev}' may or may not end a sentence"
            case EndingKind.EMPTY:
                return "no transcript yet"
            case EndingKind.COMPLETE if self.source == "terminal punctuation":
                return f"terminal '{ev}'"
            case EndingKind.COMPLETE if self.source == "final phrase":
                return f"complete-looking ending '{ev}' (a final phrase)"
            case EndingKind.COMPLETE:
                return f"complete-looking ending '{ev}'"


_MARKER = re.compile(r"<[^>]*>|\[([^\]]*)\]|\+\+([^+]*)\+\+")
"""Recogniser markers: ``<sil>``, ``<s>``; fillers ``[uh]``, ``++um++``, ``[noise]``."""

_ALTERNATE = re.compile(r"\(\d+\)")
"""Pronunciation-variant suffixes (``the(2)``) that pocketsphinx may leave on a word."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")

_CLOSERS = "\"'”’)]} \t\n"


class _PhraseSet:
    """Phrases looked up against the last words of a transcript, longest first."""

    def __init__(self, phrases: tuple[Phrase, ...]) -> None:
        self._by_len: dict[int, set[Phrase]] = {}
        for phrase in phrases:
            self._by_len.setdefault(len(phrase), set()).add(phrase)
        self._lengths = sorted(self._by_len, reverse=True)

    def match(self, words: tuple[str, ...]) -> str | None:
        for n in self._lengths:
            if n <= len(words) and words[-n:] in self._by_len[n]:
                return " ".join(words[-n:])
        return None


class TranscriptReader:
    """Reads how a transcript ends, by the precedence documented in the rules file.

    Args:
        rules: the rules whose word lists and punctuation are used.
    """

    def __init__(self, rules: EndpointingRules) -> None:
        w = rules.words
        self._final = _PhraseSet(w.final_phrases)
        self._corrections = _PhraseSet(w.self_corrections)
        self._hesitations = _PhraseSet(w.hesitations)
        self._non_final = _PhraseSet(w.all_non_final())
        self._weak = _PhraseSet(w.weak_final)
        self._filler_words = {p[0] for p in w.hesitations if len(p) == 1}
        by_length = sorted(rules.punctuation.continuing, key=len, reverse=True)
        self._continuing = tuple(by_length)
        self._terminal = tuple(sorted(rules.punctuation.terminal, key=len, reverse=True))

    def words(self, text: str) -> tuple[str, ...]:
        """Lower-case words of ``text``; recogniser markers dropped, filler markers kept."""

        def marker(m: re.Match[str]) -> str:
            inner = (m.group(1) or m.group(2) or "").strip().lower()
            return f" {inner} " if inner in self._filler_words else " "

        text = _MARKER.sub(marker, text.lower().replace("’", "'"))
        return tuple(_WORD.findall(_ALTERNATE.sub("", text)))

    def read(self, text: str) -> TextEnding:
        """Classify the end of ``text`` (a partial or final transcript)."""
        words = self.words(text)
        if not words:
            return TextEnding(EndingKind.EMPTY, "", "none")
        if (phrase := self._final.match(words)) is not None:
            return TextEnding(EndingKind.COMPLETE, phrase, "final phrase")
        if (phrase := self._corrections.match(words)) is not None:
            return TextEnding(EndingKind.SELF_CORRECTION, phrase, "word")
        if (phrase := self._hesitations.match(words)) is not None:
            return TextEnding(EndingKind.HESITATION, phrase, "word")
        tail = text.rstrip(_CLOSERS)
        for mark in self._continuing:
            if tail.endswith(mark):
                return TextEnding(EndingKind.INCOMPLETE, mark, "continuing punctuation")
        for mark in self._terminal:
            if tail.endswith(mark):
                return TextEnding(EndingKind.COMPLETE, mark, "terminal punctuation")
        if (phrase := self._non_final.match(words)) is not None:
            return TextEnding(EndingKind.INCOMPLETE, phrase, "word")
        if (phrase := self._weak.match(words)) is not None:
            return TextEnding(EndingKind.UNCERTAIN, phrase, "word")
        return TextEnding(EndingKind.COMPLETE, words[-1], "word")


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


class SmartEndpointer:
    """End of turn after a silence bound chosen from the transcript's ending.

    Per frame: take the partial transcript (frozen once the silence passes ``text_settle_ms``)
    → read its ending (`TranscriptReader`) → that ending's bound (dynamic mode shifts it) →
    acoustic adjustment (acoustic mode) → not before ``text_settle_ms`` → clamp to
    ``[min, max]``. The turn ends when the silence reaches the bound; `last_decision_reason`
    says why that bound.

    Dynamic mode keeps an exponential moving average of the pauses reported by `on_resume`
    (pauses that did *not* end a turn) and sets::

        base = clamp(ema_pause_ms * factor + margin_ms, min, max)

    A bound must sit above the pauses this user makes inside a turn; pause lengths are
    right-skewed with a spread that grows with their mean, so the bound is a multiple of the
    mean plus a margin for VAD hang-over. The EMA starts at ``(base - margin_ms) / factor`` so
    that, before any pause is seen, dynamic mode equals static mode. The other bounds (not
    ``min`` and ``max``) move by the same amount as ``base``. LiveKit Agents' dynamic
    endpointing likewise keeps an EMA of a user's between-utterance pauses, clamped to its
    0.5–3.0 s bounds, and uses it directly as the minimum delay (livekit-agents
    ``voice/endpointing.py``, ``DynamicEndpointing``, history weight 0.9).
    Caveat: only pauses shorter than the bound in force are ever observed (longer ones ended
    the turn), so the EMA underestimates long pausers.

    Args:
        rules: bounds and word lists; None loads the packaged rules.
        dynamic: adapt the bounds to this user's within-turn pauses.
        acoustic: adjust the bound by final pitch movement and energy decay (needs
            praat-parselmouth).

    Raises:
        ImportError: ``acoustic=True`` and praat-parselmouth is not installed.
        RulesError: ``rules`` is None and the packaged rules file is broken.
    """

    name = "smart"

    def __init__(
        self,
        rules: EndpointingRules | None = None,
        dynamic: bool = False,
        acoustic: bool = False,
    ) -> None:
        self.rules = rules if rules is not None else load_rules()
        self.dynamic = dynamic
        self.acoustic = acoustic
        if acoustic:
            require_acoustic_backend()
        self.reader = TranscriptReader(self.rules)
        b, d = self.rules.bounds_ms, self.rules.dynamic
        self._pause_ema_ms = max(0.0, (b.base - d.margin_ms) / d.factor)
        self.last_required_silence_ms = b.base
        self.last_decision_reason = "no pause seen yet"
        self._reset_pause()

    # -- per-user statistics ------------------------------------------------------------

    @property
    def pause_ema_ms(self) -> float:
        """Moving average of this user's within-turn pauses (ms), as used by dynamic mode."""
        return self._pause_ema_ms

    @property
    def base_ms(self) -> float:
        """The base bound in force (ms): the rules' ``base``, or the dynamic one."""
        b = self.rules.bounds_ms
        if not self.dynamic:
            return b.base
        d = self.rules.dynamic
        return _clamp(self._pause_ema_ms * d.factor + d.margin_ms, b.min, b.max)

    # -- the Endpointer protocol --------------------------------------------------------

    def decide(self, ctx: PauseContext) -> bool:
        """True once the silence reaches `required_silence_ms` for this frame."""
        bound_ms, _ = self.required_silence_ms(ctx)
        return ctx.silence_ms >= bound_ms

    def on_resume(self, pause_ms: float) -> None:
        """The user spoke again after ``pause_ms``; dynamic mode learns from the pause."""
        self._reset_pause()
        d = self.rules.dynamic
        if self.dynamic and pause_ms >= d.min_pause_ms:
            self._pause_ema_ms += d.alpha * (pause_ms - self._pause_ema_ms)

    def on_turn_end(self) -> None:
        """Forget the pause; keep the per-user pause statistics."""
        self._reset_pause()

    # -- the decision -------------------------------------------------------------------

    def required_silence_ms(self, ctx: PauseContext) -> tuple[float, str]:
        """The silence this frame's evidence needs before the turn ends, and why.

        Call it in frame order (``decide`` does): the policy keeps the transcript as it stood
        when the silence reached ``text_settle_ms`` and reads that one for the rest of the
        pause. Calling it again with the same context gives the same answer. A smaller
        ``silence_ms`` than the previous call starts a new pause.

        Returns:
            ``(bound_ms, reason)``, e.g. ``(800.0, "800 ms: trailing hesitation 'um' ...")``.

        Raises:
            ValueError: ``ctx.silence_ms`` is negative.
        """
        if ctx.silence_ms < 0:
            raise ValueError(f"silence_ms must be >= 0, got {ctx.silence_ms}")
        text = self._settled_text(ctx)
        b, settle_ms = self.rules.bounds_ms, self.rules.text_settle_ms
        ending = self.reader.read(text)
        bound, notes = self._text_bound(ending)
        bound += self._acoustic_adjustment(ctx, ending, notes)
        if self.reader.words(ctx.partial_text) != self.reader.words(text):
            notes.append(f"words heard after {settle_ms:g} ms of silence ignored as noise")
        if bound < settle_ms:
            bound = settle_ms
            notes.append(f"not before the transcript settles at {settle_ms:g} ms")
        if not b.min <= bound <= b.max:
            bound = _clamp(bound, b.min, b.max)
            notes.append(f"held within [{b.min:g}, {b.max:g}] ms")
        reason = f"{bound:g} ms: " + "; ".join(notes)
        self.last_required_silence_ms = bound
        self.last_decision_reason = reason
        return bound, reason

    def _text_bound(self, ending: TextEnding) -> tuple[float, list[str]]:
        b = self.rules.bounds_ms
        base = self.base_ms
        shift = base - b.base
        notes = [ending.describe()]
        match ending.kind:
            case EndingKind.SELF_CORRECTION | EndingKind.HESITATION:
                bound = b.max
                notes.append("wait the maximum")
            case EndingKind.INCOMPLETE:
                bound = _clamp(b.incomplete + shift, b.min, b.max)
            case EndingKind.COMPLETE:
                bound = _clamp(b.complete + shift, b.min, b.max)
            case EndingKind.UNCERTAIN | EndingKind.EMPTY:
                bound = base
                notes.append("base bound")
        if self.dynamic and shift != 0:
            notes.append(
                f"dynamic: mean pause {self._pause_ema_ms:.0f} ms puts the base at {base:.0f} ms"
            )
        return bound, notes

    def _acoustic_adjustment(
        self, ctx: PauseContext, ending: TextEnding, notes: list[str]
    ) -> float:
        if not self.acoustic or ending.kind in (EndingKind.SELF_CORRECTION, EndingKind.HESITATION):
            return 0.0
        cues = self._cues_for(ctx)
        if cues is None or cues.pitch_change_semitones is None:
            return 0.0
        a = self.rules.acoustic
        change = cues.pitch_change_semitones
        slope = cues.energy_slope_db_per_s
        if change <= -a.pitch_fall_semitones:
            if slope is not None and slope <= a.energy_decay_db_per_s:
                notes.append(
                    f"final pitch fall ({change:+.1f} st) with energy decay "
                    f"({slope:.0f} dB/s): -{a.shorten_ms:g} ms"
                )
                return -a.shorten_ms
            return 0.0
        if change >= a.pitch_rise_semitones:
            notes.append(f"final pitch rise ({change:+.1f} st): +{a.lengthen_ms:g} ms")
            return a.lengthen_ms
        if abs(change) <= a.pitch_flat_semitones:
            notes.append(f"level final pitch ({change:+.1f} st): +{a.lengthen_ms:g} ms")
            return a.lengthen_ms
        return 0.0

    # -- per-pause state ----------------------------------------------------------------

    def _reset_pause(self) -> None:
        self._pause_text: str | None = None
        self._last_silence_ms = -1.0
        self._cues: AcousticCues | None = None
        self._cues_done = False

    def _settled_text(self, ctx: PauseContext) -> str:
        """The transcript this pause is judged on: the latest one up to ``text_settle_ms``."""
        if ctx.silence_ms < self._last_silence_ms:
            self._reset_pause()
        self._last_silence_ms = ctx.silence_ms
        if self._pause_text is None or ctx.silence_ms <= self.rules.text_settle_ms:
            self._pause_text = ctx.partial_text
        return self._pause_text

    def _cues_for(self, ctx: PauseContext) -> AcousticCues | None:
        """Cues of this pause's tail audio, computed once per pause."""
        if not self._cues_done and ctx.tail_audio is not None and len(ctx.tail_audio) > 0:
            self._cues = compute_cues(ctx.tail_audio)
            self._cues_done = True
        return self._cues
