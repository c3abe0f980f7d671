"""Latency masking: a filler line only when a wait runs long, cut at a word by the answer.

T. Pan ("Voice AI in Production") lists the tactics: fire predictable tool calls at call start,
mask mid-call ones with a spoken acknowledgement, bridge with a statement past a time
threshold. `FillerSchedule` is the threshold rule: a tool that answers within ``threshold_ms``
gets no filler (a filler that is not needed only adds words before the answer); one that does
not gets the next line of ``lines`` spoken while it runs.

A lever puts a filler into the reply's text stream as a `FillerText` (a ``str``, so any
consumer of a `earshot.llm.base.LanguageModel` still reads it as text): the tool lever
(`earshot.levers.tools.ToolUsingLLM`) and the budget policy's ``filler`` action
(`earshot.levers.budget_policy.BudgetGuardLLM`) both do, and the response runner
(`earshot.session.response.ResponseRunner`) speaks it as a sentence of its own. When the real
answer's first audio is ready while the filler is still playing, the runner cuts the filler's
queued audio where `plan_cut` says — never mid-word:

* inside a word: at the end of that word (`word_boundary_cut`), the last ``fade_ms`` of it
  faded out;
* between words (or after the last, in its trailing silence): ``fade_ms`` from the played
  position, faded to silence, and never past the start of the next word;
* not started yet: dropped whole; without word timings (a TTS that gives none): played whole;

and the answer's audio follows at once. The words after the cut are dropped from the reply's
word timings and text, so heard text and history hold only what the caller heard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from earshot.audio.frames import samples_to_ms
from earshot.tts.base import WordTiming

DEFAULT_FILLER_LINES: tuple[str, ...] = (
    "One moment while I check.",
    "Let me look that up.",
    "Just a second.",
)

DEFAULT_FADE_MS = 10.0
"""Fade-out at a filler cut (ms): an assumption, long enough that the stop makes no click (a
step of a few ms is audible), short against a word (~250 ms)."""


@dataclass(frozen=True, slots=True)
class FillerConfig:
    """When and what to say while a tool runs.

    Args:
        threshold_ms: speak a filler if the tool has not answered this long after it started.
            300 ms is an assumption (no published figure): past the ~200–300 ms gap that reads
            as a natural turn transition, well inside the 700 ms that feels awkward (§39.2.1).
        lines: filler lines, used in rotation.
        fade_ms: fade-out at the cut (ms; `DEFAULT_FADE_MS`).

    Raises:
        ValueError: a negative threshold or fade, or no lines.
    """

    threshold_ms: float = 300.0
    lines: tuple[str, ...] = DEFAULT_FILLER_LINES
    fade_ms: float = DEFAULT_FADE_MS

    def __post_init__(self) -> None:
        if self.threshold_ms < 0 or self.fade_ms < 0:
            raise ValueError("filler threshold_ms and fade_ms must be >= 0")
        if not self.lines or not all(line.strip() for line in self.lines):
            raise ValueError("give at least one non-empty filler line")


@dataclass(frozen=True, slots=True)
class SpeakFiller:
    """Speak ``text`` now (the tool has run past the threshold)."""

    text: str
    at_ms: float


@dataclass(slots=True)
class FillerSchedule:
    """The threshold rule for one tool wait, fed ``now_ms``.

    Args:
        config: threshold and lines.
        started_ms: when the tool call started.
        line_index: which of ``config.lines`` to use (rotate across calls).
    """

    config: FillerConfig
    started_ms: float
    line_index: int = 0
    spoken: SpeakFiller | None = None
    answered_ms: float | None = None
    _done: bool = field(default=False)

    @property
    def due_ms(self) -> float:
        """When the filler is due if the tool has not answered."""
        return self.started_ms + self.config.threshold_ms

    def poll(self, now_ms: float) -> SpeakFiller | None:
        """The filler, once, if the threshold has passed and the tool has not answered."""
        if self._done or self.spoken is not None or now_ms < self.due_ms:
            return None
        line = self.config.lines[self.line_index % len(self.config.lines)]
        self.spoken = SpeakFiller(line, now_ms)
        return self.spoken

    def answered(self, now_ms: float) -> None:
        """The tool answered at ``now_ms``; no filler after this."""
        self.answered_ms = now_ms
        self._done = True


FillerSource = Literal["tool", "budget"]


class FillerText(str):
    """A filler line in a reply's text stream: spoken as its own sentence, cut by the answer.

    A ``str`` with one more attribute, so a wrapper that passes deltas through unchanged keeps
    it; a wrapper that rebuilds the text loses the mark, and the line is then spoken whole.

    Args:
        text: the line.
        source: which lever spoke it: ``"tool"`` (a tool ran past the threshold) or
            ``"budget"`` (the budget policy's ``filler`` action).
        fade_ms: the fade-out at a cut (ms).

    Raises:
        ValueError: a negative fade.
    """

    source: FillerSource
    fade_ms: float

    def __new__(
        cls, text: str, source: FillerSource = "tool", fade_ms: float = DEFAULT_FADE_MS
    ) -> FillerText:
        if fade_ms < 0:
            raise ValueError(f"a filler's fade_ms must be >= 0, got {fade_ms}")
        line = super().__new__(cls, text)
        line.source = source
        line.fade_ms = fade_ms
        return line


def word_boundary_cut(words: Sequence[WordTiming], played_samples: int) -> int:
    """The first sample at or after ``played_samples`` where speech may stop without cutting a
    word: the end of the word being played, else ``played_samples`` itself (between words).

    Args:
        words: the filler's word timings, 16 kHz samples from its first sample, in order.
        played_samples: how much of the filler has played (16 kHz samples).
    """
    for word in words:
        if word.start_sample < played_samples < word.end_sample:
            return word.end_sample
    return played_samples


@dataclass(frozen=True, slots=True)
class FillerCut:
    """Where a filler stops when the answer is ready (all positions in 16 kHz samples from the
    filler's first sample).

    Attributes:
        sent_samples: how much of the filler had left the jitter buffer (cannot be recalled).
        cut_sample: where its audio now ends (``sent_samples <= cut_sample <= its length``).
        fade_samples: the linear fade-out ending at ``cut_sample`` (only unsent audio).
        heard: the words that end at or before the cut (played whole).
        dropped: the words after the cut (never played).
        num_samples: the filler's length.
    """

    sent_samples: int
    cut_sample: int
    fade_samples: int
    heard: tuple[WordTiming, ...]
    dropped: tuple[WordTiming, ...]
    num_samples: int

    @property
    def whole(self) -> bool:
        """Nothing is cut: the filler plays to its end."""
        return self.cut_sample >= self.num_samples


def plan_cut(
    words: Sequence[WordTiming], num_samples: int, sent_samples: int, fade_samples: int
) -> FillerCut:
    """Where to stop a filler whose first ``sent_samples`` are out (see the module docstring).

    Args:
        words: the filler's word timings, 16 kHz samples from its first sample, in order.
        num_samples: the filler's length (16 kHz samples).
        sent_samples: samples of it that have left the jitter buffer.
        fade_samples: the fade-out wanted at the cut (16 kHz samples).

    Returns:
        The cut. Once the filler has been sent whole, or when there are no word timings
        (a TTS that gives none) and it has started, ``cut_sample == num_samples``.

    Raises:
        ValueError: a negative length, position or fade.
    """
    if num_samples < 0 or sent_samples < 0 or fade_samples < 0:
        raise ValueError(
            f"filler length {num_samples}, sent {sent_samples} and fade {fade_samples} "
            "samples must be >= 0"
        )
    sent = min(sent_samples, num_samples)
    boundary = word_boundary_cut(words, sent)
    if sent == 0:  # not started: drop it all, nothing to fade
        cut = 0
    elif not words:  # no word timings: any cut could fall mid-word, so it plays whole
        cut = num_samples
    elif boundary > sent:  # inside a word: finish it, fading its tail
        cut = boundary
    else:  # between words: fade from here, before the next word starts
        starts = [w.start_sample for w in words if w.start_sample >= sent]
        cut = min([sent + fade_samples, num_samples, *starts])
    cut = min(cut, num_samples)
    heard = tuple(w for w in words if w.end_sample <= cut)
    dropped = tuple(w for w in words if w.end_sample > cut)
    fade = 0 if cut >= num_samples else min(fade_samples, cut - sent)
    return FillerCut(sent, cut, fade, heard, dropped, num_samples)


@dataclass(slots=True)
class FillerPlayback:
    """One filler of a reply as the response runner spoke it; ``extra["filler"]`` of its turn.

    Attributes:
        text: the line.
        source: which lever spoke it (`FillerText.source`).
        at_ms: when the lever put it in the stream (session clock).
        text_start: where it starts in the reply's generated text (characters).
        start_sample: where its audio starts in the response (16 kHz samples).
        num_samples: its audio's length (16 kHz samples); 0 until synthesized.
        words: its word timings, 16 kHz samples from its own first sample.
        fade_ms: the fade at a cut (ms).
        cut: where the answer cut it; None while it plays on, or if it played whole.
        cut_at_ms: when the answer's first audio was ready and the cut was made.
        outcome: ``"cut"``, ``"whole"`` (it had played out, or the sink cannot cut) or None
            (not settled: the reply was interrupted or is still going).
    """

    text: str
    source: FillerSource
    at_ms: float
    text_start: int
    start_sample: int = 0
    num_samples: int = 0
    words: tuple[WordTiming, ...] = ()
    fade_ms: float = DEFAULT_FADE_MS
    cut: FillerCut | None = None
    cut_at_ms: float | None = None
    outcome: Literal["cut", "whole"] | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "text": self.text,
            "source": self.source,
            "at_ms": round(self.at_ms, 3),
            "ms": round(samples_to_ms(self.num_samples), 3),
            "outcome": self.outcome,
        }
        if self.cut is not None and self.cut_at_ms is not None:
            out |= {
                "cut_at_ms": round(self.cut_at_ms, 3),
                "sent_ms": round(samples_to_ms(self.cut.sent_samples), 3),
                "cut_ms": round(samples_to_ms(self.cut.cut_sample), 3),
                "fade_ms": round(samples_to_ms(self.cut.fade_samples), 3),
                "heard": " ".join(w.text for w in self.cut.heard),
                "dropped": " ".join(w.text for w in self.cut.dropped),
            }
        return out
