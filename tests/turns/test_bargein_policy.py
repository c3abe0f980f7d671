"""The barge-in policy on exact synthetic timelines (20 ms frames), and its pure helpers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from earshot.tts.base import WordTiming
from earshot.tts.heard import resume_text
from earshot.turns.bargein import (
    Backchannel,
    BackchannelsError,
    BargeInConfig,
    BargeInDetected,
    BargeInEvent,
    BargeInPolicy,
    FalseInterruption,
    InterruptionConfirmed,
    is_backchannel,
    load_backchannels,
    max_reaction_ms,
    normalise_words,
    packaged_backchannels_path,
    reaction_ms,
)

FRAME_MS = 20


def run(
    policy: BargeInPolicy,
    start_ms: int,
    end_ms: int,
    *,
    speech: bool,
    playing: bool,
    voiced_onset_ms: float | None = None,
) -> list[tuple[int, BargeInEvent]]:
    """Push the frames ending at start_ms+20 .. end_ms; return (frame_end_ms, event) pairs."""
    out: list[tuple[int, BargeInEvent]] = []
    for frame_end in range(start_ms + FRAME_MS, end_ms + 1, FRAME_MS):
        for event in policy.push(frame_end, playing, speech, voiced_onset_ms):
            out.append((frame_end, event))
    return out


def detect_at(policy: BargeInPolicy, onset_ms: int = 1000) -> BargeInDetected:
    """Agent plays from 0; the user speaks from onset_ms; return the detection."""
    assert run(policy, 0, onset_ms, speech=False, playing=True) == []
    events = run(policy, onset_ms, onset_ms + 200, speech=True, playing=True)
    assert len(events) == 1
    event = events[0][1]
    assert isinstance(event, BargeInDetected)
    return event


# -- detection ------------------------------------------------------------------------------


def test_detection_exactly_at_onset_plus_min_interruption() -> None:
    policy = BargeInPolicy(BargeInConfig(min_interruption_ms=200))
    assert run(policy, 0, 1000, speech=False, playing=True) == []
    # Frames 1000-1020 .. 1160-1180 are speech: 180 ms of voiced run, no detection yet.
    assert run(policy, 1000, 1180, speech=True, playing=True) == []
    assert not policy.pending
    # The frame ending at 1200 completes 200 ms from the onset (the first speech frame's start).
    assert policy.push(1200, True, True) == [BargeInDetected(onset_ms=1000, detected_ms=1200)]
    assert policy.pending
    # Pending: further speech frames do not detect again.
    assert run(policy, 1200, 1600, speech=True, playing=False) == []


def test_segmenter_onset_is_used_when_given() -> None:
    policy = BargeInPolicy(BargeInConfig(min_interruption_ms=200))
    run(policy, 0, 1000, speech=False, playing=True)
    # The segmenter says "speech" only at 1100 but dates the onset back to 1000.
    assert run(policy, 1000, 1100, speech=False, playing=True) == []
    events = run(policy, 1100, 1300, speech=True, playing=True, voiced_onset_ms=1000)
    assert events == [(1200, BargeInDetected(onset_ms=1000, detected_ms=1200))]


def test_a_later_segmenter_onset_redates_the_current_run() -> None:
    policy = BargeInPolicy(BargeInConfig(min_interruption_ms=200))
    run(policy, 0, 1000, speech=False, playing=True)
    assert run(policy, 1000, 1100, speech=True, playing=True) == []
    # From 1100 on the segmenter reports that the run began at 960 (its pre-speech padding).
    events = run(policy, 1100, 1300, speech=True, playing=True, voiced_onset_ms=960)
    assert events == [(1160, BargeInDetected(onset_ms=960, detected_ms=1160))]


def test_zero_min_interruption_detects_on_first_speech_frame() -> None:
    policy = BargeInPolicy(BargeInConfig(min_interruption_ms=0))
    run(policy, 0, 500, speech=False, playing=True)
    assert policy.push(520, True, True) == [BargeInDetected(500, 520)]


def test_no_detection_when_agent_is_silent() -> None:
    policy = BargeInPolicy()
    run(policy, 0, 1000, speech=False, playing=False)
    assert run(policy, 1000, 3000, speech=True, playing=False) == []
    assert not policy.pending


def test_speech_that_starts_before_playout_is_a_normal_turn() -> None:
    policy = BargeInPolicy()
    run(policy, 0, 1000, speech=False, playing=False)
    assert run(policy, 1000, 1100, speech=True, playing=False) == []
    # The agent starts playing while the user is already talking: not a barge-in.
    assert run(policy, 1100, 2000, speech=True, playing=True) == []
    # A new run during playout is.
    run(policy, 2000, 2100, speech=False, playing=True)
    events = run(policy, 2100, 2400, speech=True, playing=True)
    assert events == [(2300, BargeInDetected(2100, 2300))]


def test_short_blip_during_playout_does_not_interrupt() -> None:
    policy = BargeInPolicy(BargeInConfig(min_interruption_ms=200))
    run(policy, 0, 1000, speech=False, playing=True)
    assert run(policy, 1000, 1180, speech=True, playing=True) == []  # 180 ms
    assert run(policy, 1180, 1300, speech=False, playing=True) == []
    # A second 180 ms blip: the run restarts, the two do not add up.
    assert run(policy, 1300, 1480, speech=True, playing=True) == []
    assert run(policy, 1480, 1600, speech=False, playing=True) == []
    assert not policy.pending


def test_no_detection_once_playout_has_ended() -> None:
    policy = BargeInPolicy()
    run(policy, 0, 1000, speech=False, playing=True)
    run(policy, 1000, 1100, speech=True, playing=True)
    # The reply finishes before the run reaches 200 ms.
    assert run(policy, 1100, 1600, speech=True, playing=False) == []


# -- false interruptions --------------------------------------------------------------------


def test_false_interruption_exactly_at_detection_plus_timeout() -> None:
    policy = BargeInPolicy(BargeInConfig(false_interruption_timeout_ms=2000))
    detected = detect_at(policy, onset_ms=1000)
    assert detected.detected_ms == 1200
    # Noise stops; no words. Nothing until 1200 + 2000.
    assert run(policy, 1200, 3180, speech=False, playing=False) == []
    assert policy.push(3200, False, False) == [FalseInterruption(1200, 3200)]
    assert not policy.pending


def test_words_before_the_timeout_prevent_a_false_interruption() -> None:
    policy = BargeInPolicy(BargeInConfig(false_interruption_timeout_ms=2000))
    detect_at(policy, onset_ms=1000)
    run(policy, 1200, 1800, speech=True, playing=False)
    policy.on_words("yeah", 1800)
    assert policy.latest_words == "yeah"
    assert policy.latest_words_ms == 1800
    assert run(policy, 1800, 5000, speech=False, playing=False) == []
    assert policy.pending


def test_words_retracted_before_the_timeout_allow_a_false_interruption() -> None:
    policy = BargeInPolicy(BargeInConfig(false_interruption_timeout_ms=2000))
    detect_at(policy, onset_ms=1000)
    policy.on_words("the", 1500)
    policy.on_words("", 1700)  # the recogniser revised its partial to nothing
    assert run(policy, 1200, 3200, speech=False, playing=False) == [
        (3200, FalseInterruption(1200, 3200))
    ]


def test_noise_markers_are_not_words() -> None:
    policy = BargeInPolicy(BargeInConfig(false_interruption_timeout_ms=2000))
    detect_at(policy, onset_ms=1000)
    policy.on_words("<sil> [noise]", 1500)
    assert run(policy, 1200, 3200, speech=False, playing=False) == [
        (3200, FalseInterruption(1200, 3200))
    ]


def test_words_outside_a_barge_in_are_ignored() -> None:
    policy = BargeInPolicy()
    policy.on_words("hello there", 100)
    assert policy.latest_words == ""
    assert policy.on_user_turn_end("hello there", 900) is None


# -- resolution at the end of the user's turn -----------------------------------------------


@pytest.mark.parametrize("transcript", ["yeah", "mm hmm", "okay right", "Mm-hmm.", "um hum"])
def test_backchannel_transcript_resumes(transcript: str) -> None:
    policy = BargeInPolicy()
    detect_at(policy, onset_ms=1000)
    policy.on_words(transcript, 1300)
    assert policy.on_user_turn_end(transcript, 1900) == Backchannel(transcript, 1200, 1900)
    assert not policy.pending


def test_backchannel_then_more_words_is_an_interruption() -> None:
    policy = BargeInPolicy()
    detect_at(policy, onset_ms=1000)
    policy.on_words("yeah", 1300)
    assert policy.pending  # "yeah" alone decides nothing yet: more may follow
    policy.on_words("yeah but wait", 1700)
    assert policy.on_user_turn_end(" yeah but wait ", 2400) == InterruptionConfirmed(
        "yeah but wait", 1200, 2400
    )
    assert not policy.pending


def test_empty_transcript_at_turn_end_is_a_false_interruption() -> None:
    policy = BargeInPolicy()
    detect_at(policy, onset_ms=1000)
    assert policy.on_user_turn_end("", 1800) == FalseInterruption(1200, 1800)


def test_too_many_backchannel_words_is_an_interruption() -> None:
    policy = BargeInPolicy(BargeInConfig(max_backchannel_words=2))
    detect_at(policy, onset_ms=1000)
    assert policy.on_user_turn_end("yeah okay right", 2000) == InterruptionConfirmed(
        "yeah okay right", 1200, 2000
    )


def test_turn_end_after_timeout_resolution_is_a_normal_turn() -> None:
    policy = BargeInPolicy(BargeInConfig(false_interruption_timeout_ms=2000))
    detect_at(policy, onset_ms=1000)
    assert run(policy, 1200, 3200, speech=True, playing=False)[-1] == (
        3200,
        FalseInterruption(1200, 3200),
    )
    assert policy.on_user_turn_end("", 3600) is None


# -- re-arming ------------------------------------------------------------------------------


def test_continuing_noise_does_not_re_trigger_after_a_false_interruption() -> None:
    policy = BargeInPolicy(BargeInConfig(false_interruption_timeout_ms=2000))
    detect_at(policy, onset_ms=1000)
    # Keyboard noise goes on: the timeout resolves it while the run continues ...
    assert run(policy, 1200, 3200, speech=True, playing=False) == [
        (3200, FalseInterruption(1200, 3200))
    ]
    # ... and the resumed reply plays on under the same voiced run: no second barge-in.
    assert run(policy, 3200, 6000, speech=True, playing=True) == []
    # A new onset during playout barges in again.
    assert run(policy, 6000, 6040, speech=False, playing=True) == []
    assert run(policy, 6040, 6300, speech=True, playing=True) == [
        (6240, BargeInDetected(6040, 6240))
    ]


def test_new_onset_required_after_a_backchannel() -> None:
    policy = BargeInPolicy()
    detect_at(policy, onset_ms=1000)
    # The turn ends while the segmenter still holds speech; the reply resumes.
    assert isinstance(policy.on_user_turn_end("yeah", 1700), Backchannel)
    assert run(policy, 1200, 2500, speech=True, playing=True) == []
    assert run(policy, 2500, 2520, speech=False, playing=True) == []
    assert run(policy, 2520, 2720, speech=True, playing=True) == [
        (2720, BargeInDetected(2520, 2720))
    ]


def test_the_same_segmenter_onset_does_not_re_arm() -> None:
    policy = BargeInPolicy(BargeInConfig(false_interruption_timeout_ms=2000))
    run(policy, 0, 1000, speech=False, playing=True)
    events = run(policy, 1000, 3200, speech=True, playing=False, voiced_onset_ms=1000)
    assert events == []  # agent silent at the run's first frame
    policy.reset()
    run(policy, 0, 1000, speech=False, playing=True)
    events = run(policy, 1000, 4000, speech=True, playing=True, voiced_onset_ms=1000)
    # Detected at 1200, resolved false at 3200 (no words), never re-detected in this run.
    assert events == [
        (1200, BargeInDetected(1000, 1200)),
        (3200, FalseInterruption(1200, 3200)),
    ]


def test_reset_forgets_a_pending_barge_in() -> None:
    policy = BargeInPolicy()
    detect_at(policy)
    policy.reset()
    assert not policy.pending
    assert policy.detection is None
    # Time may start again from zero after a reset.
    assert policy.push(20, True, False) == []


def test_frames_out_of_order_are_rejected() -> None:
    policy = BargeInPolicy()
    policy.push(100, True, False)
    with pytest.raises(ValueError, match="push frames in order"):
        policy.push(80, True, False)
    with pytest.raises(ValueError, match="voiced_onset_ms"):
        policy.push(120, True, True, voiced_onset_ms=140)


# -- configuration --------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = BargeInConfig()
    assert config.min_interruption_ms == 200
    assert config.false_interruption_timeout_ms == 2000
    assert config.max_backchannel_words == 2
    assert {"yeah", "mmhmm", "okay", "right", "got it"} <= config.backchannels


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_interruption_ms": -1}, "min_interruption_ms must be >= 0"),
        ({"min_interruption_ms": float("nan")}, "min_interruption_ms must be >= 0"),
        ({"false_interruption_timeout_ms": -5}, "false_interruption_timeout_ms must be > 0"),
        ({"false_interruption_timeout_ms": 0}, "false_interruption_timeout_ms must be > 0"),
        ({"max_backchannel_words": 0}, "max_backchannel_words must be an integer >= 1"),
        ({"backchannels": frozenset({"yeah", "..."})}, "no word left"),
        ({"backchannels": "yeah"}, "not one string"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BargeInConfig(**kwargs)  # type: ignore[arg-type]


def test_config_normalises_backchannels() -> None:
    config = BargeInConfig(backchannels=frozenset({"Uh-Huh!", "Got  it."}))
    assert config.backchannels == frozenset({"uhhuh", "got it"})
    assert is_backchannel("uh huh", config)
    assert not is_backchannel("yeah", config)


# -- backchannel file -----------------------------------------------------------------------


def test_packaged_backchannels_load() -> None:
    entries = load_backchannels()
    assert entries == load_backchannels(packaged_backchannels_path())
    assert {"yeah", "yes", "mmhmm", "uhhuh", "okay", "ok", "right", "i see"} <= entries


def test_backchannels_override_by_path(tmp_path: Path) -> None:
    path = tmp_path / "bc.yaml"
    path.write_text('backchannels:\n  - "Yep"\n  - "roger that"\n', encoding="utf-8")
    config = BargeInConfig(backchannels=load_backchannels(path))
    assert config.backchannels == frozenset({"yep", "roger that"})
    assert is_backchannel("roger that", config)
    assert not is_backchannel("yeah", config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backchannels: [yeah\n", "not valid YAML"),
        ("- yeah\n- okay\n", "single key 'backchannels'"),
        ("backchannels: [yeah]\nextra: 1\n", r"found \['backchannels', 'extra'\]"),
        ("backchannels: []\n", "non-empty list"),
        ("backchannels: yeah\n", "non-empty list"),
        ("backchannels:\n  - yes\n", "quote the word"),
        ("backchannels:\n  - 3\n", "entries must be strings"),
        ("backchannels:\n  - '?!'\n", "no word left"),
    ],
)
def test_bad_backchannel_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BackchannelsError, match=message) as info:
        load_backchannels(path)
    assert str(path) in str(info.value)


def test_missing_backchannel_file(tmp_path: Path) -> None:
    with pytest.raises(BackchannelsError, match="no such backchannel file"):
        load_backchannels(tmp_path / "nope.yaml")


# -- normalisation and backchannel matching -------------------------------------------------


def test_normalise_words() -> None:
    assert normalise_words("Mm-hmm. Okay, RIGHT!") == ["mmhmm", "okay", "right"]
    assert normalise_words("<s> yes <sil> the(2) </s> [NOISE] ++breath++") == ["yes", "the"]
    assert normalise_words("that's it—done / ok") == ["thats", "it", "done", "ok"]
    assert normalise_words("  ... - ") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yeah", True),
        ("Yeah.", True),
        ("mm hmm", True),
        ("mmhmm", True),
        ("uh-huh", True),
        ("um hum", True),
        ("okay right", True),
        ("got it", True),
        ("all right", True),
        ("", False),
        ("it", False),
        ("yeah but wait", False),
        ("wait", False),
        ("right now", False),
        ("okay okay okay", False),
    ],
)
def test_is_backchannel(text: str, expected: bool) -> None:
    assert is_backchannel(text, BargeInConfig()) is expected


# -- resume_text ----------------------------------------------------------------------------


def timings(text: str, samples_per_word: int = 1000) -> list[WordTiming]:
    """Whitespace tokens of ``text`` as back-to-back words of ``samples_per_word`` each."""
    return [
        WordTiming(token, i * samples_per_word, (i + 1) * samples_per_word)
        for i, token in enumerate(text.split())
    ]


@pytest.mark.parametrize(
    ("generated", "words", "played", "expected"),
    [
        # Nothing played: the whole reply.
        (
            "The train leaves at nine.",
            timings("The train leaves at nine."),
            0,
            ("The train leaves at nine."),
        ),
        # Two words fully played, the third cut mid-way: resume at the third.
        (
            "The train leaves at nine.",
            timings("The train leaves at nine."),
            2500,
            ("leaves at nine."),
        ),
        # Exactly at a word boundary.
        ("The train leaves at nine.", timings("The train leaves at nine."), 3000, "at nine."),
        # Everything heard.
        ("The train leaves at nine.", timings("The train leaves at nine."), 5000, ""),
        # The LLM is ahead of TTS: the unsynthesized text is part of the rest.
        (
            "The train leaves at nine. Platform four.",
            timings("The train leaves at nine."),
            5000,
            "Platform four.",
        ),
        (
            "The train leaves at nine. Platform four.",
            timings("The train leaves at nine."),
            3000,
            "at nine. Platform four.",
        ),
        # Markdown the chunker removed before TTS; line breaks kept in the rest.
        (
            "**Sure!** Here:\n- first item\n- second",
            timings("Sure! Here: first item second"),
            2000,
            "first item\n- second",
        ),
        (
            "**Sure!** Here:\n- first item\n- second",
            timings("Sure! Here: first item second"),
            3000,
            "item\n- second",
        ),
        # A lone dash rides with the word before it (espeak gives it no word of its own).
        (
            "Wait - then go.",
            [
                WordTiming("Wait -", 0, 1000),
                WordTiming("then", 1000, 2000),
                WordTiming("go.", 2000, 3000),
            ],
            1000,
            "then go.",
        ),
        # Nothing heard: the reply as generated, a leading bullet included.
        ("- first item\n- second", timings("first item second"), 500, "- first item\n- second"),
        # No timings at all yet (TTS has not produced a word).
        ("Hello there.", [], 16000, "Hello there."),
    ],
)
def test_resume_text(
    generated: str, words: Sequence[WordTiming], played: int, expected: str
) -> None:
    assert resume_text(generated, words, played) == expected


def test_resume_text_keeps_a_partly_heard_token() -> None:
    # The synthesized text split a token the LLM wrote as one ("well-known" → "well-", "known").
    words = [
        WordTiming("It's", 0, 100),
        WordTiming("well-", 100, 200),
        WordTiming("known", 200, 300),
    ]
    assert resume_text("It's well-known here.", words, 200) == "well-known here."


def test_resume_text_rejects_words_from_another_reply() -> None:
    with pytest.raises(ValueError, match="not the start of the generated text"):
        resume_text("Good morning.", timings("Good evening."), 2000)
    with pytest.raises(ValueError, match="played_samples must be >= 0"):
        resume_text("Good morning.", timings("Good morning."), -1)


# -- reaction time --------------------------------------------------------------------------


def test_reaction_time_arithmetic() -> None:
    # Onset 1000 ms, detection at 1200 ms, playout cleared after the frame ending at 1220 ms.
    assert reaction_ms(user_onset_ms=1000, last_agent_sample_played_ms=1220) == 220
    assert max_reaction_ms(min_interruption_ms=200, frame_ms=20) == 240
    assert reaction_ms(1000, 1220) <= max_reaction_ms(200, 20)


# -- short acknowledgements the STT mis-hears ------------------------------------------------


def _pending_policy() -> BargeInPolicy:
    policy = BargeInPolicy(BargeInConfig())
    for i in range(20):
        policy.push((i + 1) * 20.0, agent_playing=True, is_speech=i >= 5)
    assert policy.pending
    return policy


def test_a_short_misheard_acknowledgement_resumes_the_reply() -> None:
    policy = _pending_policy()
    res = policy.on_user_turn_end("the", now_ms=900.0, speech_ms=420.0)
    assert isinstance(res, Backchannel)


def test_a_short_interrupt_word_still_takes_the_turn() -> None:
    policy = _pending_policy()
    res = policy.on_user_turn_end("stop", now_ms=900.0, speech_ms=380.0)
    assert isinstance(res, InterruptionConfirmed)


def test_a_long_utterance_is_not_an_acknowledgement() -> None:
    policy = _pending_policy()
    res = policy.on_user_turn_end("the", now_ms=900.0, speech_ms=900.0)
    assert isinstance(res, InterruptionConfirmed)


def test_without_speech_duration_only_the_word_list_counts() -> None:
    policy = _pending_policy()
    res = policy.on_user_turn_end("the", now_ms=900.0)
    assert isinstance(res, InterruptionConfirmed)
