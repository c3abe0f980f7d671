"""Smart end-pointer on exact synthetic pause timelines (20 ms frames, no clock, no sleeping)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from earshot.turns.detector import EndOfTurn, TurnDetector, TurnEvent, TurnResumed
from earshot.turns.endpointer import FixedEndpointer, PauseContext
from earshot.turns.endpointing_rules import RulesError, load_rules, packaged_rules_path
from earshot.turns.factory import make_endpointer
from earshot.turns.smart import EndingKind, SmartEndpointer

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:  # hypothesis is a test extra; the deterministic sweep below still runs
    HAVE_HYPOTHESIS = False

FRAME_MS = 20.0
RULES = load_rules()
B = RULES.bounds_ms


def first_end_ms(
    ep: SmartEndpointer | FixedEndpointer,
    text: str | Callable[[float], str],
    limit_ms: float = 3000.0,
) -> float:
    """Feed one pause frame by frame; the silence at which `decide` first says True."""
    silence = FRAME_MS
    while silence <= limit_ms:
        partial = text(silence) if callable(text) else text
        if ep.decide(PauseContext(silence, 1500.0, partial)):
            return silence
        silence += FRAME_MS
    raise AssertionError(f"no end of turn within {limit_ms} ms")


def test_packaged_rules_are_the_documented_defaults() -> None:
    assert (B.min, B.max, B.base, B.complete, B.incomplete) == (200, 800, 500, 450, 750)
    assert RULES.text_settle_ms == 150


@pytest.mark.parametrize(
    ("text", "end_ms", "reason"),
    [
        ("what time is it", 460, "complete-looking ending 'it'"),
        ("it comparatively modern", 460, "complete-looking ending 'modern'"),
        ("i want to book a table um", 800, "trailing hesitation 'um'"),
        ("so uh", 800, "trailing hesitation 'uh'"),
        ("i went to the store and", 760, "'and' cannot end an English sentence"),
        ("can you pass me the", 760, "'the' cannot end an English sentence"),
        ("i would like to", 760, "'to' cannot end an English sentence"),
        ("what time is it actually", 800, "self-correction 'actually'"),
        ("no wait", 800, "self-correction 'no wait'"),
        ("yes i think so", 460, "'think so' (a final phrase)"),
        ("yes it is", 500, "'is' may or may not end a sentence"),
        ("", 500, "no transcript yet"),
        ("What time is it?", 460, "terminal '?'"),
        ("So I was thinking,", 760, "trailing ','"),
        ("<s> turn left [uh] </s>", 800, "trailing hesitation 'uh'"),
    ],
)
def test_first_end_of_turn_by_ending(text: str, end_ms: float, reason: str) -> None:
    ep = SmartEndpointer(RULES)
    assert first_end_ms(ep, text) == end_ms
    assert reason in ep.last_decision_reason
    # the bound stated in the reason is the one the first ending frame reached
    stated = float(ep.last_decision_reason.split(" ms: ")[0])
    assert end_ms - FRAME_MS < stated <= end_ms


def test_required_silence_explains_the_bound() -> None:
    ep = SmartEndpointer(RULES)
    bound, reason = ep.required_silence_ms(PauseContext(20.0, 900.0, "i need um"))
    assert bound == 800.0
    assert reason == "800 ms: trailing hesitation 'um'; wait the maximum"
    assert ep.last_required_silence_ms == 800.0


def test_last_word_arriving_early_in_the_pause_is_read() -> None:
    # pocketsphinx emits the last word tens of ms into the silence: within the 150 ms settle
    # window it counts, so the ending is complete (450 ms), not 'is' (500 ms).
    ep = SmartEndpointer(RULES)
    assert first_end_ms(ep, lambda s: "what time is" if s < 100 else "what time is it") == 460
    ep.on_turn_end()
    assert first_end_ms(ep, lambda s: "turn left" if s < 140 else "turn left um") == 800


def test_words_after_the_settle_window_are_ignored_as_noise() -> None:
    # Noise decoded as words while the VAD hears silence must not move the bound.
    ep = SmartEndpointer(RULES)
    assert first_end_ms(ep, lambda s: "turn left" if s < 200 else "turn left the") == 460
    assert "words heard after 150 ms of silence ignored as noise" in ep.last_decision_reason


def test_no_end_before_the_transcript_settles() -> None:
    b = RULES.bounds_ms.model_copy(update={"complete": 200.0})
    rules = RULES.model_copy(update={"bounds_ms": b, "text_settle_ms": 250.0})
    ep = SmartEndpointer(rules)
    assert first_end_ms(ep, "what time is it") == 260
    assert "not before the transcript settles at 250 ms" in ep.last_decision_reason


def test_actually_never_mind_is_not_cut_after_the_question() -> None:
    """§39.4 Q3 through the real turn detector: 'what time is it... actually... never mind'."""
    ep = SmartEndpointer(RULES)
    det = TurnDetector(ep, min_speech_ms=200)
    script = [
        ("S" * 40, "what time is it"),
        ("." * 20, "what time is it"),  # 400 ms < the 450 ms complete bound
        ("S" * 25, "what time is it actually"),
        ("." * 35, "what time is it actually"),  # 700 ms < 800 ms max
        ("S" * 30, "what time is it actually never mind"),
        ("." * 40, "what time is it actually never mind"),
    ]
    events: list[TurnEvent] = []
    t = 0.0
    for pattern, text in script:
        for c in pattern:
            events += det.push(t, t + FRAME_MS, c == "S", text)
            t += FRAME_MS
    resumes = [e for e in events if isinstance(e, TurnResumed)]
    ends = [e for e in events if isinstance(e, EndOfTurn)]
    assert [r.pause_ms for r in resumes] == [400.0, 700.0]
    assert len(ends) == 1
    assert ends[0].speech_end_ms == (40 + 20 + 25 + 35 + 30) * FRAME_MS
    assert ends[0].decided_at_ms - ends[0].speech_end_ms == 460.0


def test_a_new_pause_reads_the_new_text() -> None:
    ep = SmartEndpointer(RULES)
    assert first_end_ms(ep, lambda s: "hello" if s < 200 else "hello the") == 460
    ep.on_resume(460.0)
    assert first_end_ms(ep, "hello the") == 760
    ep.on_turn_end()
    assert first_end_ms(ep, "hello there") == 460
    # a smaller silence than the last call also starts a new pause
    assert first_end_ms(ep, "hello there and") == 760


def test_every_listed_word_ends_within_min_and_max() -> None:
    words = RULES.words
    phrases = [
        *words.final_phrases,
        *words.self_corrections,
        *words.hesitations,
        *words.all_non_final(),
        *words.weak_final,
    ]
    for phrase in phrases:
        end = first_end_ms(SmartEndpointer(RULES), "well " + " ".join(phrase))
        assert B.min <= end <= B.max, phrase


def test_negative_silence_is_rejected() -> None:
    with pytest.raises(ValueError, match="silence_ms must be >= 0"):
        SmartEndpointer(RULES).decide(PauseContext(-20.0, 100.0, "hi"))


if HAVE_HYPOTHESIS:
    _text = st.text(
        alphabet=st.sampled_from(list("abcdehilmnorstuw '?,.\n")) | st.characters(),
        max_size=60,
    )
    _vocab = st.lists(
        st.sampled_from(["the", "um", "actually", "and", "so", "time", "is", "it", "?", ",", ""]),
        max_size=8,
    ).map(" ".join)

    @settings(max_examples=300, deadline=None)
    @given(text=_text | _vocab)
    def test_any_fixed_text_ends_between_min_and_max(text: str) -> None:
        ep = SmartEndpointer(RULES)
        end = first_end_ms(ep, text)
        assert B.min <= end <= B.max
        # and exactly at the first frame reaching the stated bound
        assert end - FRAME_MS < ep.last_required_silence_ms <= end

    @settings(max_examples=200, deadline=None)
    @given(texts=st.lists(_vocab, min_size=1, max_size=50))
    def test_changing_text_never_waits_past_max(texts: list[str]) -> None:
        ep = SmartEndpointer(RULES)
        end = first_end_ms(ep, lambda s: texts[int(s // FRAME_MS) % len(texts)])
        assert B.min <= end <= B.max


# -- dynamic mode ---------------------------------------------------------------------


def test_dynamic_mode_starts_equal_to_static() -> None:
    ep = SmartEndpointer(RULES, dynamic=True)
    # prior EMA = (base - margin) / factor = (500 - 200) / 1.5
    assert ep.pause_ema_ms == 200.0
    assert ep.base_ms == 500.0
    assert first_end_ms(ep, "") == 500


def test_dynamic_mode_adapts_to_observed_pauses() -> None:
    ep = SmartEndpointer(RULES, dynamic=True)
    ep.on_resume(400.0)  # ema = 200 + 0.2 * (400 - 200) = 240 → base 240 * 1.5 + 200 = 560
    assert ep.pause_ema_ms == pytest.approx(240.0)
    assert ep.base_ms == pytest.approx(560.0)
    ep.on_resume(50.0)  # shorter than min_pause_ms (100): VAD flicker, ignored
    assert ep.pause_ema_ms == pytest.approx(240.0)
    ep.on_resume(600.0)  # ema = 240 + 0.2 * 360 = 312 → base 668 (+168 on every bound)
    assert ep.pause_ema_ms == pytest.approx(312.0)
    assert ep.base_ms == pytest.approx(668.0)
    ep.on_turn_end()  # per-user statistics survive the turn
    assert first_end_ms(ep, "") == 680  # first 20 ms frame >= 668
    assert "mean pause 312 ms puts the base at 668 ms" in ep.last_decision_reason
    ep.on_turn_end()
    assert first_end_ms(ep, "what time is it") == 620  # 450 + 168 = 618
    ep.on_turn_end()
    assert first_end_ms(ep, "and") == 800  # 750 + 168 = 918, held at max
    ep.on_turn_end()
    assert first_end_ms(ep, "um") == 800


def test_dynamic_mode_speeds_up_for_a_short_pauser() -> None:
    ep = SmartEndpointer(RULES, dynamic=True)
    for _ in range(60):
        ep.on_resume(100.0)
    assert ep.pause_ema_ms == pytest.approx(100.0, abs=0.01)
    assert ep.base_ms == pytest.approx(350.0, abs=0.02)  # 100 * 1.5 + 200
    assert first_end_ms(ep, "") == 360  # the first 20 ms frame past 350.00x
    ep.on_turn_end()
    assert first_end_ms(ep, "what time is it") == 320  # 450 - 150 = 300.00x
    ep.on_turn_end()
    assert first_end_ms(ep, "the") == 620  # 750 - 150 = 600.00x


def test_static_mode_ignores_pauses() -> None:
    ep = SmartEndpointer(RULES)
    for _ in range(10):
        ep.on_resume(700.0)
    assert ep.base_ms == 500.0
    assert first_end_ms(ep, "") == 500


# -- rules files ----------------------------------------------------------------------


def _write_rules(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    path = tmp_path / "my_rules.yaml"
    path.write_text(edit(packaged_rules_path().read_text(encoding="utf-8")), encoding="utf-8")
    return path


def test_custom_rules_file_changes_behaviour(tmp_path: Path) -> None:
    path = _write_rules(
        tmp_path,
        lambda s: s.replace("  complete: 450", "  complete: 240").replace(
            "    - um\n", "    - um\n    - okay\n"
        ),
    )
    ep = make_endpointer("smart", rules_path=path)
    assert isinstance(ep, SmartEndpointer)
    assert first_end_ms(ep, "what time is it") == 240
    ep.on_turn_end()
    assert first_end_ms(ep, "turn left okay") == 800
    assert first_end_ms(SmartEndpointer(RULES), "turn left okay") == 460


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.replace("  base: 500\n", ""), "missing key 'bounds_ms.base'"),
        (lambda s: s.replace("text_settle_ms:", "text_settle:"), "unknown key 'text_settle'"),
        (lambda s: s.replace("text_settle_ms: 150", "text_settle_ms: 900"), "must not exceed"),
        (lambda s: s.replace("  min: 200", "  min: 900"), "min (900) must not exceed max (800)"),
        (lambda s: s.replace("  complete: 450", "  complete: 100"), "complete (100) must lie"),
        (lambda s: s.replace("  alpha: 0.2", "  alpha: fast"), "key 'dynamic.alpha'"),
        (lambda s: s.replace('    - "on"', "    - on"), "quote the word"),
        (lambda s: s.replace("bounds_ms:", "bounds_ms: [\n"), "not valid YAML"),
        (lambda s: "- just\n- a list\n", "a rules file is a YAML mapping"),
    ],
)
def test_bad_rules_file_names_file_and_key(
    tmp_path: Path, edit: Callable[[str], str], expected: str
) -> None:
    path = _write_rules(tmp_path, edit)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no such rules file"):
        make_endpointer("smart", rules_path=tmp_path / "nope.yaml")


# -- factory ----------------------------------------------------------------------------


def test_factory_builds_each_policy() -> None:
    fixed = make_endpointer("fixed", silence_ms=600)
    assert isinstance(fixed, FixedEndpointer)
    assert first_end_ms(fixed, "um") == 600
    smart = make_endpointer("smart", dynamic=True)
    assert isinstance(smart, SmartEndpointer)
    assert smart.dynamic and smart.acoustic  # prosody is on by default
    assert smart.name == "smart"
    text_only = make_endpointer("smart", acoustic=False)
    assert isinstance(text_only, SmartEndpointer) and not text_only.acoustic


def test_factory_rejects_unknown_names_and_misplaced_options() -> None:
    with pytest.raises(
        ValueError, match="unknown end-pointer 'clever'; choose one of fixed, smart"
    ):
        make_endpointer("clever")
    with pytest.raises(ValueError, match="dynamic mode only apply to the smart end-pointer"):
        make_endpointer("fixed", dynamic=True)


def test_reader_handles_recogniser_markers() -> None:
    reader = SmartEndpointer(RULES).reader
    assert reader.words("<s> The(2) [NOISE] ++UM++ it’s </s>") == ("the", "um", "it's")
    assert reader.read("it's").kind is EndingKind.INCOMPLETE
    assert reader.read("[noise]").kind is EndingKind.EMPTY


def test_acoustic_mode_without_its_library_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "parselmouth", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install praat-parselmouth"):
        make_endpointer("smart", acoustic=True)
