"""Scoring a barge-in scenario against ground truth, and aggregating the scores.

Pure functions over what a run left behind: the session's records (turns, barge-ins), the agent
track, the response handles (word timings in samples of each response) and a `PlayoutLog` of
which response samples went into which output frame. Ground truth comes from the user track
(`earshot.evals.bargein_scenarios.UserTrack`) and from the agent track itself, never from the
session's own timing record alone; both are reported side by side.

Definitions (all times in ms of session time, which is audio time for a file transport):

* **reaction** — end of the last agent sample played before the stop − the user's onset, for
  the barge-in *caused by the event* (the first one blamed on it whose VAD onset is no more
  than `ONSET_TOLERANCE_MS` before the event's sound onset).
  *Session-measured*: the session's record (`last_agent_sample_ms` − the VAD's onset).
  *Ground truth*: the last non-zero sample of the interrupted response in the agent track −
  the event's sound onset in the user track. The difference is the VAD onset lag (Silero looks
  at 32 ms windows, the segmenter needs a voiced run, AEC3 may hold back the start of speech
  over the echo) plus trailing silence in the reply. A reply stopped while still being
  prepared played nothing and has no reaction time.
* **heard words** — the words of the interrupted response whose audio was played in full:
  word ``end_sample`` ≤ samples played, per the `PlayoutLog`. The session's heard text must be
  exactly those words (after any prefix heard before an earlier resume), each must end in the
  agent track before the stop, and they must be a prefix of the generated reply.
* **self-interruption** — a barge-in detected while the user track holds no placed sound:
  detection time outside every ``[onset, end + ATTRIBUTION_SLACK_MS]``; the echo (or noise in
  the room) stopped the agent.
* **cut-in success** — the question's reply was stopped by a barge-in attributed to the cut-in
  and confirmed, and a turn of the cut-in was answered (its reply reached the loudspeaker).
* **reply completed** — the question's reply was not left interrupted, the turn's heard text is
  the whole reply, and its last response played every synthesized sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from earshot.audio.frames import Pcm16, samples_to_ms
from earshot.evals.bargein_scenarios import Clip, Scenario, UserTrack
from earshot.metrics.stats import stat_ms
from earshot.metrics.turn import TurnRecord
from earshot.session.response import ResponseHandle
from earshot.session.session import SessionState
from earshot.transports.file import MemoryRecorder
from earshot.tts.base import WordTiming
from earshot.turns.bargein import normalise_words

ATTRIBUTION_SLACK_MS = 300.0
"""How long after a placed sound ends a barge-in detection is still blamed on it (ms): the VAD
scores 32 ms windows and the segmenter holds speech a few frames after it stops."""

ONSET_TOLERANCE_MS = 100.0
"""A barge-in is caused by the event (and timed against its onset) only if its VAD onset is at
most this much before the event's sound onset (ms): the segmenter dates a run back to its first
frame and Silero scores 32 ms windows. An earlier onset means something else (echo) began it."""

ANSWER_WINDOW_MS = 1500.0
"""A turn whose speech ends up to this long after the cut-in's sound is the cut-in's turn (ms)."""


@dataclass(frozen=True, slots=True)
class PlayedSegment:
    """Samples ``[first_sample, end_sample)`` of a response, played in output frame ``frame``
    starting at the frame's first sample (a response always fills a frame from its start)."""

    response_id: int
    frame: int
    first_sample: int
    end_sample: int


@dataclass(slots=True)
class PlayoutLog:
    """Which response samples each output frame carried, from per-tick played-sample counts.

    Feed `observe` once per pacer tick with the cumulative played samples of every response
    (`earshot.playout.jitter.JitterBuffer.played_samples`); a count that grew since the last
    tick means that frame carried those samples.

    Args:
        frame_samples: samples per output frame (16 kHz).
    """

    frame_samples: int
    segments: list[PlayedSegment] = field(default_factory=list)
    _played: dict[int, int] = field(default_factory=dict)

    def observe(self, frame: int, played: Mapping[int, int]) -> None:
        """Record output frame ``frame`` given each response's cumulative played samples.

        Raises:
            ValueError: a count went down (a response cannot un-play audio).
        """
        for rid, count in played.items():
            before = self._played.get(rid, 0)
            if count < before:
                raise ValueError(f"response {rid} played count went back from {before} to {count}")
            if count > before:
                self.segments.append(PlayedSegment(rid, frame, before, count))
                self._played[rid] = count

    def played_samples(self, response_id: int) -> int:
        """Samples of the response played in all (0 if none)."""
        return self._played.get(response_id, 0)

    def of(self, response_id: int) -> list[PlayedSegment]:
        """The response's segments, in play order."""
        return [s for s in self.segments if s.response_id == response_id]

    def track_index(self, response_id: int, sample: int) -> int | None:
        """Agent-track index of response sample ``sample``, or None if it was not played."""
        for s in self.of(response_id):
            if s.first_sample <= sample < s.end_sample:
                return s.frame * self.frame_samples + sample - s.first_sample
        return None

    def end_ms(self, segment: PlayedSegment) -> float:
        """Session time just past the segment's last sample (ms)."""
        return samples_to_ms(
            segment.frame * self.frame_samples + segment.end_sample - segment.first_sample
        )

    def response_ending_at(self, end_ms: float) -> int | None:
        """The response whose played audio ended at ``end_ms`` (its last segment), if any."""
        for rid in dict.fromkeys(s.response_id for s in self.segments):
            segs = self.of(rid)
            if abs(self.end_ms(segs[-1]) - end_ms) < 0.01:
                return rid
        return None

    def last_nonzero_index(self, response_id: int, agent_track: Pcm16) -> int | None:
        """Agent-track index of the response's last non-zero played sample, or None."""
        for s in reversed(self.of(response_id)):
            start = s.frame * self.frame_samples
            nz = np.flatnonzero(agent_track[start : start + s.end_sample - s.first_sample])
            if nz.size:
                return start + int(nz[-1])
        return None


# --------------------------------------------------------------------------- one scenario


def attribute(detected_ms: float, sounds: Sequence[tuple[str, float, float]]) -> str | None:
    """The placed sound a barge-in detected at ``detected_ms`` is blamed on, or None (self)."""
    for label, onset_ms, end_ms in sounds:
        if onset_ms <= detected_ms <= end_ms + ATTRIBUTION_SLACK_MS:
            return label
    return None


def heard_check(
    handle: ResponseHandle,
    played: int,
    log: PlayoutLog,
    agent_track: Pcm16,
    stored_heard_text: str | None,
) -> dict[str, Any]:
    """Check the heard words of one interrupted response against its word timings and audio.

    Args:
        handle: the interrupted response (its ``words`` are in samples of the response).
        played: samples of it played before the stop (from the `PlayoutLog`).
        log: the playout log.
        agent_track: int16, the agent output track from session time 0.
        stored_heard_text: what the session kept as heard for this stop (the turn's heard
            text, or the next resume's prefix), or None if it kept nothing to compare.

    Returns:
        ``heard_words`` (whole words played), ``generated_words``, ``heard_text`` (expected),
        ``matches_session`` (the stored text is exactly prefix + those words; None if nothing
        stored), ``ended_before_stop`` (each heard word's last sample lies in the agent track at
        or before the response's last non-zero sample), ``prefix_of_reply`` (the heard words
        start the generated reply) and ``next_word_cut`` (the first unheard word, if any, was
        not fully played).
    """
    words: list[WordTiming] = list(handle.words)
    heard = []
    for word in words:
        if word.end_sample > played:
            break
        heard.append(word)
    expected = " ".join(t for t in (handle.heard_prefix, *(w.text for w in heard)) if t)
    last_nz = log.last_nonzero_index(handle.response_id, agent_track)
    ended = True
    for word in heard:
        index = log.track_index(handle.response_id, word.end_sample - 1)
        if index is None or last_nz is None or index > last_nz:
            ended = False
    generated = normalise_words(handle.generated_text)
    heard_norm = normalise_words(expected)
    next_word = words[len(heard)] if len(heard) < len(words) else None
    return {
        "heard_words": len(heard),
        "generated_words": len(handle.generated_text.split()),
        "heard_text": expected,
        "matches_session": None if stored_heard_text is None else stored_heard_text == expected,
        "ended_before_stop": ended,
        "prefix_of_reply": generated[: len(heard_norm)] == heard_norm,
        "next_word_cut": next_word is None or next_word.end_sample > played,
    }


def _stored_heard(
    handle: ResponseHandle, handles: Sequence[ResponseHandle], resolution: str
) -> str | None:
    """What the session kept as heard for this stop."""
    if resolution == "confirmed":
        return handle.turn.heard_text
    later = [h for h in handles if h.turn is handle.turn and h.response_id > handle.response_id]
    return later[0].heard_prefix if later else None


def score_barge_ins(
    records: Sequence[dict[str, Any]],
    handles: Sequence[ResponseHandle],
    log: PlayoutLog,
    agent_track: Pcm16,
    sounds: Sequence[tuple[str, float, float]],
    event_onset_ms: float | None,
) -> list[dict[str, Any]]:
    """Every barge-in record with ground truth beside it.

    Adds to a copy of each record: ``attributed_to`` (``"event"``, ``"question"`` or None, by
    detection time), ``self_interruption`` (attributed to nothing), ``caused_by_event`` (the
    first barge-in attributed to the event whose VAD onset is consistent with the event's
    onset, see `ONSET_TOLERANCE_MS`), ``gt_last_agent_sample_ms`` (last non-zero sample of the
    interrupted response in the agent track), for the barge-in caused by the event
    ``gt_onset_ms``, ``gt_reaction_ms`` and ``vad_onset_lag_ms`` (VAD onset − ground-truth
    onset), and ``heard`` (`heard_check`). Later barge-ins during a long event (the user goes
    on talking over the answer) get no ground-truth reaction: the onset of that later speech
    run is not annotated.
    """
    by_id = {h.response_id: h for h in handles}
    scored: list[dict[str, Any]] = []
    claimed = False
    for record in records:
        out = dict(record)
        label = attribute(float(record["detected_ms"]), sounds)
        out["attributed_to"] = label
        out["self_interruption"] = label is None
        caused = (
            label == "event"
            and not claimed
            and event_onset_ms is not None
            and float(record["user_onset_ms"]) >= event_onset_ms - ONSET_TOLERANCE_MS
        )
        claimed = claimed or caused
        out["caused_by_event"] = caused
        last_ms = record.get("last_agent_sample_ms")
        # A reply stopped while still being prepared played nothing: no heard words to check.
        rid = None if last_ms is None else log.response_ending_at(float(last_ms))
        handle = by_id.get(rid) if rid is not None else None
        out["response_id"] = rid
        gt_last_ms: float | None = None
        if handle is not None and rid is not None:
            last_nz = log.last_nonzero_index(rid, agent_track)
            gt_last_ms = samples_to_ms(last_nz + 1) if last_nz is not None else None
            out["heard"] = heard_check(
                handle,
                log.played_samples(rid),
                log,
                agent_track,
                _stored_heard(handle, handles, str(record["resolution"])),
            )
        out["gt_last_agent_sample_ms"] = None if gt_last_ms is None else round(gt_last_ms, 3)
        if caused and event_onset_ms is not None:
            out["gt_onset_ms"] = round(event_onset_ms, 3)
            out["gt_reaction_ms"] = (
                None if gt_last_ms is None else round(gt_last_ms - event_onset_ms, 3)
            )
            out["vad_onset_lag_ms"] = round(float(record["user_onset_ms"]) - event_onset_ms, 3)
        scored.append(out)
    return scored


def question_turn(turns: Sequence[TurnRecord], onset_ms: float, end_ms: float) -> TurnRecord | None:
    """The turn of the question: its speech ends inside the question's sound (+ slack)."""
    for t in turns:
        speech_end = t.marks_ms.get("speech_end")
        if speech_end is not None and onset_ms <= speech_end <= end_ms + ATTRIBUTION_SLACK_MS:
            return t
    return None


def reply_completed(
    turn: TurnRecord, handles: Sequence[ResponseHandle], log: PlayoutLog
) -> dict[str, Any]:
    """Whether the reply of ``turn`` was played to its end (see the module docstring)."""
    own = [h for h in handles if h.turn is turn]
    last = own[-1] if own else None
    played_all = (
        last is not None
        and last.synthesized_samples > 0
        and log.played_samples(last.response_id) == last.synthesized_samples
    )
    whole = bool(turn.agent_text) and normalise_words(turn.heard_text) == normalise_words(
        turn.agent_text
    )
    heard = normalise_words(turn.heard_text)
    return {
        "completed": (not turn.interrupted) and whole and played_all,
        "interrupted": turn.interrupted,
        "heard_whole_reply": whole,
        "played_to_end": played_all,
        "final_heard_words": " ".join(heard[-4:]),
        "resumes": int(turn.extra.get("resumes", 0)),
    }


# --------------------------------------------------------------------------- aggregation


stat = stat_ms
"""``{"n", "p50_ms", "p95_ms", "mean_ms", "max_ms"}`` (`earshot.metrics.stats.stat_ms`)."""


@dataclass(slots=True)
class ScenarioOutcome:
    state: SessionState
    handles: list[ResponseHandle]
    log: PlayoutLog
    underrun_samples: int
    recorder: MemoryRecorder


def offline_erle_db(agent_frames: Sequence[Pcm16]) -> float | None:
    """ERLE (dB) of a fresh AEC3 on the echo-only microphone signal of an agent track.

    The agent frames go through a fresh default `EchoPath` (the eval's room) and a fresh
    `EchoCanceller` with the frames as far end; ERLE is taken from the first agent sample on,
    after a 1 s convergence skip (`earshot.echo.metrics.erle_db`). None when there is too
    little agent audio or the residual is exactly zero.
    """
    import numpy as np

    from earshot.echo.aec import EchoCanceller
    from earshot.echo.metrics import erle_db
    from earshot.echo.path import EchoPath

    if not agent_frames:
        return None
    path, aec = EchoPath(), EchoCanceller()
    echo = [path.process(f) for f in agent_frames]
    out = [aec.process(e, f) for e, f in zip(echo, agent_frames, strict=True)]
    far = np.concatenate(list(agent_frames))
    nz = np.flatnonzero(far)
    if nz.size == 0:
        return None
    start = int(nz[0])
    try:
        value = erle_db(
            np.concatenate(echo)[start:],
            np.concatenate(out)[start:],
            skip_ms=1000.0,
            output_delay_samples=aec.output_delay_samples,
        )
    except ValueError:
        return None
    return None if math.isinf(value) else round(value, 2)


def score_scenario(
    scenario: Scenario,
    track: UserTrack,
    outcome: ScenarioOutcome,
    playout_start_pass1_ms: float,
    erle: float | None,
) -> dict[str, Any]:
    """One scenario's result document (see `earshot.evals.bargein_score` for definitions)."""
    state = outcome.state
    agent_track = outcome.recorder.agent_track()
    barge_ins = score_barge_ins(
        [b.to_json() for b in state.barge_ins],
        outcome.handles,
        outcome.log,
        agent_track,
        track.sounds_ms(),
        track.event_onset_ms,
    )
    assert track.event_onset_ms is not None and track.event_end_ms is not None
    reply_turn = question_turn(state.turns, track.question_onset_ms, track.question_end_ms)
    by_id = {h.response_id: h for h in outcome.handles}
    # The cut-in may span several turns (the user pauses, goes on, and stops the answer
    # being prepared); it was answered if any of them got audio out.
    event_turns = [
        t
        for t in state.turns
        if t is not reply_turn
        and track.event_onset_ms
        <= t.marks_ms.get("speech_end", -1.0)
        <= track.event_end_ms + ANSWER_WINDOW_MS
    ]
    event_turn = event_turns[-1] if event_turns else None
    playout_start = reply_turn.marks_ms.get("playout_start") if reply_turn else None
    stopped_reply = [
        b
        for b in barge_ins
        if b.get("response_id") in by_id and by_id[b["response_id"]].turn is reply_turn
    ]
    event_stops = [b for b in stopped_reply if b["attributed_to"] == "event"]
    answered = any("playout_start" in t.marks_ms for t in event_turns)
    success = (
        reply_turn is not None
        and reply_turn.interrupted
        and any(b["resolution"] == "confirmed" for b in event_stops)
        and answered
    )
    reply = reply_completed(reply_turn, outcome.handles, outcome.log) if reply_turn else None
    result: dict[str, Any] = {
        "scenario": scenario.scenario_id,
        "condition": scenario.condition.name,
        "echo": scenario.condition.echo,
        "aec": scenario.condition.aec,
        "kind": scenario.kind,
        "event": scenario.event.name,
        "event_source": scenario.event.source,
        "event_transcript": scenario.event.transcript,
        "event_sound_ms": round(scenario.event.sound_ms, 1),
        "question": scenario.question.name,
        "offset_ms": scenario.offset_ms,
        "playout_start_pass1_ms": round(playout_start_pass1_ms, 3),
        "reply_playout_start_ms": None if playout_start is None else round(playout_start, 3),
        "actual_offset_ms": None
        if playout_start is None
        else round(track.event_onset_ms - playout_start, 3),
        "event_onset_ms": round(track.event_onset_ms, 3),
        "event_end_ms": round(track.event_end_ms, 3),
        "question_text": reply_turn.user_text if reply_turn else None,
        "event_turn": None
        if event_turn is None
        else {
            "user_text": " / ".join(t.user_text for t in event_turns),
            "turns": len(event_turns),
            "answered": answered,
            "interrupted": event_turn.interrupted,
        },
        "event_level_dbfs": level_dbfs(scenario.event),
        "barge_ins": barge_ins,
        "self_interruptions": sum(1 for b in barge_ins if b["self_interruption"]),
        "resumes": sum(int(t.extra.get("resumes", 0)) for t in state.turns),
        "success": success if scenario.kind == "cut-in" else None,
        "reply": reply,
        "erle_db": erle,
        "underrun_samples": outcome.underrun_samples,
        "turns": [
            {
                "turn": t.turn,
                "user_text": t.user_text,
                "interrupted": t.interrupted,
                "heard_text": t.heard_text,
                "agent_text": t.agent_text,
                "speech_end_ms": t.marks_ms.get("speech_end"),
                "playout_start_ms": t.marks_ms.get("playout_start"),
                "resumes": int(t.extra.get("resumes", 0)),
            }
            for t in state.turns
        ],
    }
    result["outcome"] = outcome_label(result)
    return result


def level_dbfs(clip: Clip) -> float:
    """RMS level of a clip's sound, dB relative to int16 full scale."""
    import numpy as np

    sound = clip.audio[clip.onset_sample : clip.end_sample].astype(np.float64)
    rms = float(np.sqrt(np.mean(sound**2))) if sound.size else 0.0
    return round(20.0 * math.log10(max(rms, 1e-9) / 32768.0), 1)


def outcome_label(r: dict[str, Any]) -> str:
    """A few words on what happened, for the table."""
    event_bis = [b for b in r["barge_ins"] if b["attributed_to"] == "event"]
    if r["kind"] == "cut-in":
        if r["success"]:
            return "stopped, answered"
        if r["self_interruptions"]:
            return "self-interrupted first"
        if not event_bis:
            return "not stopped"
        if event_bis[0]["resolution"] != "confirmed":
            return f"stopped, {event_bis[0]['resolution']}"
        return "stopped, not answered"
    reply = r.get("reply") or {}
    if reply.get("completed"):
        return "resumed" if event_bis else "intact"
    if r["self_interruptions"]:
        return "self-interrupted"
    if event_bis and event_bis[0]["resolution"] == "confirmed":
        text = (r.get("event_turn") or {}).get("user_text", "")
        return f"cut: heard as {text!r}"
    return "reply not completed"
