"""Barge-in policy: when user speech during agent playout interrupts it, and what happens next.

A pure, clock-free state machine. The session calls `BargeInPolicy.push` on every input frame
with the frame's end (audio time, ms), whether agent audio is playing and whether the VAD
segmenter (on the echo-cancelled microphone) holds speech; it passes the STT's partial text with
`on_words` and the user's final transcript with `on_user_turn_end`. The policy answers with
typed events; it never reads a clock::

    armed ──(voiced run that began during playout reaches min_interruption_ms)──▶ BargeInDetected
    pending ──(false_interruption_timeout_ms after detection, no words at all)──▶ FalseInterruption
    pending ──(end of the user's turn)──▶ FalseInterruption | Backchannel | InterruptionConfirmed

On `BargeInDetected` the session stops playout at once (stop first, decide later). On
`FalseInterruption` (a cough, a keyboard, a door) or `Backchannel` ("yeah", "mm-hmm") it resumes
the reply from the first unheard word (`earshot.tts.heard.resume_text`) and does not answer the
turn; on `InterruptionConfirmed` it cuts the reply at the heard words and answers the new turn.
After a false interruption or a backchannel the voiced run that caused it is spent: only a new
voiced onset (speech after a non-speech frame) can barge in again, so continuing keyboard noise does
not stop the resumed reply a second time.

Reaction time, the figure the evaluation reports, is `reaction_ms`: the end of the last agent
sample played minus the user's voiced onset. With detection at ``onset + min_interruption_ms``
and playout cleared at once, it is at most ``min_interruption_ms`` plus about two frames (one
for the VAD decision, one for the playout frame already handed out): `max_reaction_ms`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from earshot.inputs import read_text_file

PACKAGED_BACKCHANNELS = "data/bargein/backchannels.yaml"
"""Path of the default backchannel list inside the ``earshot`` package."""

DEFAULT_MIN_INTERRUPTION_MS = 200.0
"""Voiced time during playout that is a barge-in (the issue's ``--min-interruption-ms``).

LiveKit Agents' interruption ``min_duration`` default is 0.5 s (REFERENCE.md, peers' defaults).
"""

DEFAULT_FALSE_INTERRUPTION_TIMEOUT_MS = 2000.0
"""Time after a barge-in with no recognised word before the reply resumes.

LiveKit Agents' ``false_interruption_timeout`` default, 2.0 s (REFERENCE.md, peers' defaults).
"""

DEFAULT_MAX_BACKCHANNEL_WORDS = 2

DEFAULT_SHORT_UTTERANCE_MS = 600.0
"""Voiced time at or under which a barge-in utterance counts as an acknowledgement even if the
STT misheard it (chosen: "yeah", "okay", "mm-hmm" last roughly 200–500 ms), unless one of its
words is an interrupt word."""

DEFAULT_INTERRUPT_WORDS = frozenset(
    {"stop", "wait", "no", "hold", "hang", "pause", "actually", "but", "sorry", "excuse",
     "what", "hey", "enough", "quiet", "shut", "cancel"}
)  # fmt: skip
"""Words that take the turn even in a short utterance ("stop", "wait", "no"...)."""
"""Most words a backchannel may have ("okay right"); chosen, not published."""

_EPS_MS = 1e-6
"""Tolerance on time comparisons, so float frame times such as 0.1 + 0.2 still meet a bound."""


class BackchannelsError(ValueError):
    """A backchannel file cannot be used; the message names the file, the problem and the fix."""


# -- normalisation and backchannels ---------------------------------------------------------

_MARKER = re.compile(r"<[^>]*>|\[[^\]]*\]|\+\+[^+]*\+\+")
"""Recogniser markers that are not words: ``<sil>``, ``[noise]``, ``++breath++``."""

_ALTERNATE = re.compile(r"\(\d+\)$")
"""A CMU-dictionary alternate-pronunciation suffix: ``the(2)``."""


_SEPARATORS = re.compile(r"[\s\u2013\u2014/]+")
"""What separates words: whitespace, en and em dashes, slashes."""

_HYPHENS = re.compile(r"[-\u2010\u2011]")
_NOT_WORD = re.compile(r"[^\w]|_")


def normalise_words(text: str) -> list[str]:
    """Split a transcript into normalised words for matching.

    Lower-cases, drops recogniser markers (``<sil>``, ``[noise]``, ``++breath++``) and
    alternate-pronunciation suffixes (``the(2)``), collapses hyphens (``"Mm-hmm"`` → ``"mmhmm"``),
    treats dashes and slashes as spaces and strips all other punctuation (``"okay."`` →
    ``"okay"``, ``"that's"`` → ``"thats"``).

    Args:
        text: a transcript or a backchannel entry.

    Returns:
        The non-empty normalised words, in order (``[]`` for silence or noise markers only).
    """
    words: list[str] = []
    for token in _SEPARATORS.split(_MARKER.sub(" ", text.lower())):
        word = _NOT_WORD.sub("", _HYPHENS.sub("", _ALTERNATE.sub("", token)))
        if word:
            words.append(word)
    return words


def _entry_key(entry: str) -> str:
    """A backchannel entry as one key: its normalised words written together."""
    return "".join(normalise_words(entry))


def _normalise_entries(entries: Iterable[object], where: str) -> frozenset[str]:
    """Normalise backchannel entries to their canonical form (normalised words, one space)."""
    if isinstance(entries, str | bytes):
        raise ValueError(
            f"{where}: backchannels must be a collection of words or phrases, not one string "
            f"({entries!r}); write [{entries!r}]"
        )
    normalised: set[str] = set()
    for entry in entries:
        if isinstance(entry, bool):
            raise ValueError(
                f"{where}: an entry reads as {entry}: YAML takes a bare yes/no/on/off for a "
                "boolean; quote the word"
            )
        if not isinstance(entry, str):
            raise ValueError(f"{where}: entries must be strings, got {entry!r}")
        words = normalise_words(entry)
        if not words:
            raise ValueError(
                f"{where}: entry {entry!r} has no word left after normalisation "
                "(lower-case, no punctuation); remove it"
            )
        normalised.add(" ".join(words))
    return frozenset(normalised)


def packaged_backchannels_path() -> Path:
    """Filesystem path of the packaged default backchannel file."""
    return Path(str(resources.files("earshot").joinpath(PACKAGED_BACKCHANNELS)))


def load_backchannels(path: str | os.PathLike[str] | None = None) -> frozenset[str]:
    """Load a backchannel list from YAML.

    The file is a mapping with one key, ``backchannels``: a non-empty list of quoted words or
    short phrases (see the packaged file for the format and how entries match).

    Args:
        path: a backchannel YAML file; None loads the packaged default list.

    Returns:
        The entries, normalised (`normalise_words`, joined by one space).

    Raises:
        BackchannelsError: the file is missing, is not YAML, is not a mapping with exactly the
            key ``backchannels``, or an entry is empty, not a string, or a bare YAML boolean.
    """
    p = packaged_backchannels_path() if path is None else Path(path)
    if not p.is_file():
        raise BackchannelsError(
            f"{p}: no such backchannel file; give the path of a copy of "
            f"{packaged_backchannels_path()}"
        )
    try:
        data = yaml.safe_load(read_text_file(p, "backchannel file", BackchannelsError))
    except yaml.YAMLError as exc:
        raise BackchannelsError(f"{p}: not valid YAML ({exc}); fix the syntax") from exc
    if not isinstance(data, dict) or set(data) != {"backchannels"}:
        found = sorted(str(k) for k in data) if isinstance(data, dict) else type(data).__name__
        raise BackchannelsError(
            f"{p}: a backchannel file is a YAML mapping with the single key 'backchannels' "
            f"(a list of words), found {found}; see {packaged_backchannels_path()}"
        )
    entries = data["backchannels"]
    if not isinstance(entries, list) or not entries:
        raise BackchannelsError(
            f"{p}: 'backchannels' must be a non-empty list of quoted words or phrases, "
            f"got {entries!r}"
        )
    try:
        return _normalise_entries(entries, str(p))
    except ValueError as exc:
        raise BackchannelsError(str(exc)) from exc


@lru_cache(maxsize=1)
def default_backchannels() -> frozenset[str]:
    """The packaged backchannel list, normalised (loaded once)."""
    return load_backchannels()


# -- configuration and events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BargeInConfig:
    """Barge-in thresholds.

    Attributes:
        min_interruption_ms: voiced time during agent playout, from the onset of the voiced
            run, that is a barge-in (ms, >= 0). Default 200 ms, from the issue; LiveKit Agents
            uses 0.5 s (REFERENCE.md, peers' defaults).
        false_interruption_timeout_ms: after a barge-in, time with no recognised word before
            the reply resumes (ms, > 0). Default 2.0 s, LiveKit Agents'
            ``false_interruption_timeout`` (REFERENCE.md, peers' defaults).
        backchannels: words and phrases that do not take the turn; normalised on construction
            (`normalise_words`). Default: the packaged list (`load_backchannels`).
        max_backchannel_words: most words a transcript may have and still be a backchannel
            (>= 1). Default 2 (chosen).
        short_utterance_ms: a barge-in utterance with at most this much voiced time (ms) and
            at most ``max_backchannel_words`` words, none of them an interrupt word, resumes
            the reply like a backchannel: the embedded STT often mishears a short "okay" as
            "the" or "q". 0 turns this off. Default 600 ms (chosen).
        interrupt_words: words that always take the turn ("stop", "wait", "no"...).

    Raises:
        ValueError: a duration is negative (or the timeout is zero), ``max_backchannel_words``
            is below 1, or a backchannel entry is not a non-empty string.
    """

    min_interruption_ms: float = DEFAULT_MIN_INTERRUPTION_MS
    false_interruption_timeout_ms: float = DEFAULT_FALSE_INTERRUPTION_TIMEOUT_MS
    backchannels: frozenset[str] = field(default_factory=default_backchannels)
    max_backchannel_words: int = DEFAULT_MAX_BACKCHANNEL_WORDS
    short_utterance_ms: float = DEFAULT_SHORT_UTTERANCE_MS
    interrupt_words: frozenset[str] = DEFAULT_INTERRUPT_WORDS

    def __post_init__(self) -> None:
        if not self.min_interruption_ms >= 0:
            raise ValueError(
                f"min_interruption_ms must be >= 0 ms, got {self.min_interruption_ms}; "
                f"the default is {DEFAULT_MIN_INTERRUPTION_MS:g} ms"
            )
        if not self.false_interruption_timeout_ms > 0:
            raise ValueError(
                "false_interruption_timeout_ms must be > 0 ms, got "
                f"{self.false_interruption_timeout_ms}; the default is "
                f"{DEFAULT_FALSE_INTERRUPTION_TIMEOUT_MS:g} ms"
            )
        if isinstance(self.max_backchannel_words, bool) or self.max_backchannel_words < 1:
            raise ValueError(
                f"max_backchannel_words must be an integer >= 1, got {self.max_backchannel_words}"
            )
        entries = _normalise_entries(self.backchannels, "BargeInConfig.backchannels")
        object.__setattr__(self, "backchannels", entries)


@dataclass(frozen=True, slots=True)
class BargeInDetected:
    """User speech during playout reached ``min_interruption_ms``: stop playout now.

    Attributes:
        onset_ms: audio time of the onset of the user's voiced run (ms).
        detected_ms: end of the frame on which the run reached the threshold (ms).
    """

    onset_ms: float
    detected_ms: float


@dataclass(frozen=True, slots=True)
class FalseInterruption:
    """The barge-in yielded no words (noise): resume the reply from the first unheard word.

    Attributes:
        detected_ms: when the barge-in was detected (ms).
        resolved_ms: when it was judged false: detection + timeout, or the user's end of turn.
    """

    detected_ms: float
    resolved_ms: float


@dataclass(frozen=True, slots=True)
class Backchannel:
    """The barge-in was only a backchannel ("yeah"): resume the reply, do not answer the turn.

    Attributes:
        text: the user's transcript, stripped.
        detected_ms: when the barge-in was detected (ms).
        resolved_ms: the user's end of turn (ms).
    """

    text: str
    detected_ms: float
    resolved_ms: float


@dataclass(frozen=True, slots=True)
class InterruptionConfirmed:
    """A real interruption: cut the reply at the heard words and answer the new turn.

    Attributes:
        text: the user's transcript, stripped.
        detected_ms: when the barge-in was detected (ms).
        resolved_ms: the user's end of turn (ms).
    """

    text: str
    detected_ms: float
    resolved_ms: float


BargeInResolution = FalseInterruption | Backchannel | InterruptionConfirmed
BargeInEvent = BargeInDetected | BargeInResolution


def is_backchannel(text: str, config: BargeInConfig) -> bool:
    """True if the whole of ``text`` is backchannel words, at most ``max_backchannel_words``.

    The normalised words must split into consecutive runs each of which, written together,
    equals an entry written together: "mm hmm", "mm-hmm" and "mmhmm" all match "mm-hmm"; "okay
    right" matches "okay" + "right"; "yeah but wait" does not match. Empty text (noise) is not
    a backchannel.
    """
    words = normalise_words(text)
    if not words or len(words) > config.max_backchannel_words:
        return False
    keys = {_entry_key(entry) for entry in config.backchannels}
    reachable = [True] + [False] * len(words)
    for start in range(len(words)):
        if not reachable[start]:
            continue
        for stop in range(start + 1, len(words) + 1):
            if "".join(words[start:stop]) in keys:
                reachable[stop] = True
    return reachable[-1]


# -- the policy -----------------------------------------------------------------------------


class BargeInPolicy:
    """The barge-in state machine (see the module docstring).

    Args:
        config: thresholds and backchannels; None uses `BargeInConfig()` defaults.
    """

    def __init__(self, config: BargeInConfig | None = None) -> None:
        self.config = config if config is not None else BargeInConfig()
        self._last_frame_end_ms: float | None = None
        self._run_onset_ms: float | None = None
        self._run_may_interrupt = False
        self._detection: BargeInDetected | None = None
        self._latest_words = ""
        self._latest_words_ms: float | None = None

    @property
    def pending(self) -> bool:
        """True from a `BargeInDetected` until its resolution."""
        return self._detection is not None

    @property
    def detection(self) -> BargeInDetected | None:
        """The barge-in awaiting resolution, if any."""
        return self._detection

    @property
    def latest_words(self) -> str:
        """The latest partial text passed to `on_words` while pending ('' if none)."""
        return self._latest_words

    @property
    def latest_words_ms(self) -> float | None:
        """When `latest_words` arrived (the ``now_ms`` given to `on_words`), if any."""
        return self._latest_words_ms

    def push(
        self,
        frame_end_ms: float,
        agent_playing: bool,
        is_speech: bool,
        voiced_onset_ms: float | None = None,
    ) -> list[BargeInEvent]:
        """Advance by one input frame.

        A voiced run starts on a speech frame after a non-speech frame (or on the first frame
        pushed). It may barge in only if agent audio was playing on that first speech frame
        (speech that starts while the agent is silent is a normal turn) and it is not spent by
        an earlier barge-in. It barges in on the first frame, with agent audio playing, whose
        end is at least ``min_interruption_ms`` after the run's onset.

        Args:
            frame_end_ms: audio time just past the frame's last sample (ms); non-decreasing.
            agent_playing: agent audio was playing during this frame.
            is_speech: the VAD segmenter holds speech after this frame.
            voiced_onset_ms: the segmenter's onset of the current voiced run (ms), when it knows
                it (a segmenter that needs several voiced frames before it says "speech" dates
                the onset back). Without it, the onset is the start of the run's first speech
                frame: the previous frame's end (or this frame's end for the first frame ever).

        Returns:
            The events this frame caused: ``[BargeInDetected]``, ``[FalseInterruption]`` (the
            timeout passed with no words) or ``[]``.

        Raises:
            ValueError: ``frame_end_ms`` went back in time, or ``voiced_onset_ms`` is after it.
        """
        if self._last_frame_end_ms is not None and frame_end_ms < self._last_frame_end_ms:
            raise ValueError(
                f"frame_end_ms went back from {self._last_frame_end_ms} to {frame_end_ms}; "
                "push frames in order (call reset() to start a new stream)"
            )
        if voiced_onset_ms is not None and voiced_onset_ms > frame_end_ms:
            raise ValueError(
                f"voiced_onset_ms ({voiced_onset_ms}) is after the frame's end ({frame_end_ms}); "
                "pass the audio time of the voiced run's first sample"
            )
        frame_start_ms = (
            self._last_frame_end_ms if self._last_frame_end_ms is not None else frame_end_ms
        )
        self._last_frame_end_ms = frame_end_ms
        self._track_run(frame_start_ms, agent_playing, is_speech, voiced_onset_ms)

        detection = self._detection
        if detection is not None:
            waited_ms = frame_end_ms - detection.detected_ms
            timed_out = waited_ms + _EPS_MS >= self.config.false_interruption_timeout_ms
            if timed_out and not normalise_words(self._latest_words):
                return [self._resolve(FalseInterruption(detection.detected_ms, frame_end_ms))]
            return []

        onset_ms = self._run_onset_ms
        if (
            onset_ms is not None
            and self._run_may_interrupt
            and agent_playing
            and frame_end_ms - onset_ms + _EPS_MS >= self.config.min_interruption_ms
        ):
            self._detection = BargeInDetected(onset_ms, frame_end_ms)
            self._run_may_interrupt = False
            self._latest_words = ""
            self._latest_words_ms = None
            return [self._detection]
        return []

    def on_words(self, partial_text: str, now_ms: float) -> None:
        """Record the STT's latest partial transcript of the user's turn.

        Only used while a barge-in is pending: any recognised word (backchannel or not) keeps
        the timeout from declaring a false interruption; the turn's end decides the rest.
        Ignored otherwise.

        Args:
            partial_text: the current partial hypothesis ('' if none).
            now_ms: session time of the update (ms), kept as `latest_words_ms`.
        """
        if self._detection is None:
            return
        self._latest_words = partial_text
        self._latest_words_ms = now_ms

    def on_user_turn_end(
        self, transcript: str, now_ms: float, speech_ms: float | None = None
    ) -> BargeInResolution | None:
        """Resolve a pending barge-in at the user's end of turn.

        Args:
            transcript: the final transcript of the user's turn.
            now_ms: session time of the end-of-turn decision (ms).
            speech_ms: voiced duration of the user's turn (ms), if known: a short utterance
                with few words and no interrupt word is taken as an acknowledgement (see
                `BargeInConfig.short_utterance_ms`).

        Returns:
            None if no barge-in is pending (a normal turn, or one already resolved by the
            timeout); otherwise `FalseInterruption` (no words), `Backchannel` (only backchannel
            words, at most ``max_backchannel_words``) or `InterruptionConfirmed`.
        """
        detection = self._detection
        if detection is None:
            return None
        resolution: BargeInResolution
        if not normalise_words(transcript):
            resolution = FalseInterruption(detection.detected_ms, now_ms)
        elif is_backchannel(transcript, self.config) or self._short_acknowledgement(
            transcript, speech_ms
        ):
            resolution = Backchannel(transcript.strip(), detection.detected_ms, now_ms)
        else:
            resolution = InterruptionConfirmed(transcript.strip(), detection.detected_ms, now_ms)
        return self._resolve(resolution)

    def _short_acknowledgement(self, transcript: str, speech_ms: float | None) -> bool:
        if speech_ms is None or speech_ms > self.config.short_utterance_ms:
            return False
        words = normalise_words(transcript)
        return len(words) <= self.config.max_backchannel_words and not (
            set(words) & self.config.interrupt_words
        )

    def reset(self) -> None:
        """Forget everything (a new stream): no run, nothing pending, no frame seen."""
        self._last_frame_end_ms = None
        self._run_onset_ms = None
        self._run_may_interrupt = False
        self._detection = None
        self._latest_words = ""
        self._latest_words_ms = None

    def _track_run(
        self,
        frame_start_ms: float,
        agent_playing: bool,
        is_speech: bool,
        voiced_onset_ms: float | None,
    ) -> None:
        if not is_speech:
            self._run_onset_ms = None
            self._run_may_interrupt = False
            return
        if self._run_onset_ms is None:
            self._run_onset_ms = voiced_onset_ms if voiced_onset_ms is not None else frame_start_ms
            self._run_may_interrupt = agent_playing and self._detection is None
        elif voiced_onset_ms is not None:
            self._run_onset_ms = voiced_onset_ms

    def _resolve(self, resolution: BargeInResolution) -> BargeInResolution:
        # The run in progress, if any, stays spent (it began before or during the pending
        # barge-in): only a new onset can barge in again.
        self._detection = None
        self._latest_words = ""
        self._latest_words_ms = None
        return resolution


# -- after the barge-in ---------------------------------------------------------------------


def reaction_ms(user_onset_ms: float, last_agent_sample_played_ms: float) -> float:
    """Barge-in reaction time: how long the agent kept talking over the user.

    ``reaction_ms = max(0, last_agent_sample_played_ms - user_onset_ms)``, both in the session's
    audio time (ms): ``user_onset_ms`` is the onset of the user's voiced run
    (`BargeInDetected.onset_ms`) and ``last_agent_sample_played_ms`` the time just past the last
    agent sample that reached the speaker (the playout position when playout was cleared). When
    the agent had already gone quiet before the user spoke (a pause between sentences, or the
    reply was still being prepared), it did not talk over the user at all: 0, never negative.
    The issue's target is a p95 of at most `max_reaction_ms`.
    """
    return max(0.0, last_agent_sample_played_ms - user_onset_ms)


def max_reaction_ms(min_interruption_ms: float, frame_ms: float) -> float:
    """The reaction-time target: ``min_interruption_ms + 2 * frame_ms`` (the issue's done-when).

    One frame for the VAD decision on the frame that completes the threshold, one for the
    playout frame already handed to the speaker when playout is cleared.
    """
    return min_interruption_ms + 2.0 * frame_ms
