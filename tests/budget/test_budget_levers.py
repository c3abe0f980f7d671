"""Each lever's effect on its terms, exact in bounds mode ([best, worst] ms)."""

from __future__ import annotations

import numpy as np
import pytest

from earshot.budget.levers import LEVERS, LeverError, parse_lever
from earshot.budget.model import Overlap, budget_from_mapping, critical_path, load_preset
from earshot.budget.whatif import deltas, project_bounds


def what_if(preset: str, *levers: str) -> dict[str, list[float]]:
    steps = project_bounds(load_preset(preset), [parse_lever(s) for s in levers])
    return {k: v.tolist() for k, v in steps[-1].contributions_ms.items()}


def total(preset: str, *levers: str) -> list[float]:
    steps = project_bounds(load_preset(preset), [parse_lever(s) for s in levers])
    return [float(x) for x in steps[-1].total_ms()]


def test_vad_silence_sets_the_end_of_turn_wait() -> None:
    assert what_if("realtime-typical", "vad_silence=200")["endpointing"] == [200, 200]
    assert total("realtime-typical", "vad_silence=200") == [650, 650]
    # With the current threshold stated, the term shifts by the difference (600 → 300 saves 300).
    assert what_if("pipeline-ranges", "vad_silence=300,from=600")["endpointing"] == [0, 200]
    assert what_if("pipeline-ranges", "vad_silence=300")["endpointing"] == [300, 300]


def test_endpointing_grammar_and_semantic() -> None:
    assert what_if("realtime-typical", "endpointing=grammar")["endpointing"] == [250, 250]  # −150
    assert what_if("pipeline-ranges", "endpointing=semantic")["endpointing"] == [200, 300]  # ≤ 300
    assert what_if("realtime-typical", "endpointing=heuristic")["endpointing"] == [400, 400]


def test_codec_changes_the_encode_term_by_the_table_difference() -> None:
    assert what_if("pipeline-ranges", "codec=opus10")["codec"] == [10, 30]  # 20 → 10 ms
    assert what_if("pipeline-ranges", "codec=g711,from=opus40")["codec"] == [0, 0]
    assert what_if("pipeline-ranges", "codec=neural")["codec"] == [30, 50]  # +10
    # A native budget has no encode term: frame accumulation delays the last chunk in.
    assert what_if("realtime-typical", "codec=pcm16")["network_in"] == [30, 30]


def test_jitter_buffer_and_rtt() -> None:
    assert what_if("realtime-typical", "jitter_buffer=40")["jitter_buffer"] == [40, 40]
    routed = what_if("realtime-typical", "rtt=40")
    assert (routed["network_in"], routed["network_out"]) == ([20, 20], [20, 20])
    assert what_if("pipeline-ranges", "rtt=60")["network"] == [60, 60]
    assert what_if("streaming-300ms", "rtt=30,term=transport")["transport"] == [30, 30]


def test_prompt_cache() -> None:
    assert what_if("realtime-typical", "prompt_cache=0.95")["prompt"] == pytest.approx([5, 5])
    # 4000 tokens × 0.05 ms = 200 ms of prefill inside llm_ttft; caching 90 % saves 180 ms.
    cached = what_if(
        "pipeline-1.5s", "prompt_cache=0.9,prompt_tokens=4000,prefill_ms_per_token=0.05"
    )
    assert cached["llm_ttft"] == pytest.approx([420, 420])
    with pytest.raises(LeverError, match="prompt_tokens=N,prefill_ms_per_token=MS"):
        what_if("pipeline-1.5s", "prompt_cache=0.9")


def test_model_choice_by_published_ttft() -> None:
    assert what_if("pipeline-1.5s", "model=gpt-4o-mini")["llm_ttft"] == [120, 200]
    assert what_if("pipeline-1.5s", "model=gpt-4o")["llm_ttft"] == [700, 700]
    assert what_if("realtime-typical", "ttft=100")["first_token"] == [100, 100]
    with pytest.raises(LeverError, match="llm_ttft"):
        what_if("realtime-typical", "model=gpt-4o")


def test_speculative_decoding_uses_the_formula_not_the_printed_example() -> None:
    # α = 0.7, γ = 4: E = (1 − 0.7⁵)/0.3 = 2.77310 (the text prints 2.79); c = 1/8.
    expected_tokens = (1 - 0.7**5) / 0.3
    ratio = (1 + 4 * 0.125) / expected_tokens
    first = what_if("realtime-typical", "spec_decode")["first_token"]
    assert first == pytest.approx([150 * ratio] * 2, rel=1e-12)
    assert first[0] == pytest.approx(81.13, abs=0.01)
    steps = project_bounds(load_preset("realtime-typical"), [parse_lever("spec_decode")])
    assert any("2.79" in n and "2.7731" in n for n in steps[1].notes)
    custom = what_if("realtime-typical", "spec_decode,alpha=0.8,gamma=2,draft_cost=0.1")
    assert custom["first_token"][0] == pytest.approx(150 * 1.2 / (1 + 0.8 + 0.64))


def test_hedging_leaves_fixed_values_alone() -> None:
    assert total("realtime-typical", "hedge=3") == [850, 850]


def test_preemptive_generation_hides_the_llm_behind_end_of_turn() -> None:
    # 1.5 s budget: endpointing 200 + stt 300 = 500 behind; llm 600 started at speech end:
    # 100 visible.
    assert what_if("pipeline-1.5s", "preemptive")["llm_ttft"] == [100, 100]
    # Starting 450 ms late: 450 + 600 − 500 = 550 visible.
    assert what_if("pipeline-1.5s", "preemptive,stable_ms=450")["llm_ttft"] == [550, 550]
    # A start after the final transcript is no earlier than without the lever.
    assert what_if("pipeline-1.5s", "preemptive,stable_ms=900")["llm_ttft"] == [600, 600]
    # If the partial can be revised, the worst case pays the full restart.
    assert what_if("pipeline-1.5s", "preemptive,mismatch=0.2")["llm_ttft"] == [100, 600]
    assert what_if("pipeline-1.5s", "preemptive,mismatch=1")["llm_ttft"] == [600, 600]
    # Native: prompt + first_token overlap the VAD wait; the tail sticks out past 400 ms.
    native = what_if("realtime-typical", "preemptive")
    assert (native["prompt"], native["first_token"]) == ([0, 0], [0, 0])
    assert what_if("realtime-typical", "vad_silence=200", "preemptive")["first_token"] == [50, 50]
    with pytest.raises(LeverError, match="already applied"):
        what_if("pipeline-1.5s", "preemptive", "preemptive")


def test_preemptive_through_tts_hides_the_first_audio_too() -> None:
    # 500 ms behind; llm 600 + tts 300 started at speech end: 400 ms stick out, charged to
    # the last hidden term first (tts 300, then 100 of the llm).
    hidden = what_if("pipeline-1.5s", "preemptive,through=tts")
    assert (hidden["llm_ttft"], hidden["tts_first_audio"]) == ([100, 100], [300, 300])
    late = what_if("pipeline-1.5s", "preemptive,through=tts,stable_ms=450")
    assert (late["llm_ttft"], late["tts_first_audio"]) == ([550, 550], [300, 300])
    # Started at speech end, through=llm leaves the TTS term whole: only 100 of the llm shows.
    assert what_if("pipeline-1.5s", "preemptive")["tts_first_audio"] == [300, 300]
    assert total("pipeline-1.5s", "preemptive,through=tts") == total("pipeline-1.5s", "preemptive")
    # Behind a 1 s wait (1300 ms in all) the whole speculation hides: through=tts saves the
    # first audio as well, through=llm does not.
    slow = ("pipeline-1.5s", "vad_silence=1000")
    assert what_if(*slow, "preemptive,through=tts")["tts_first_audio"] == [0, 0]
    assert what_if(*slow, "preemptive")["tts_first_audio"] == [300, 300]
    with pytest.raises(LeverError, match="through= is llm or tts"):
        what_if("pipeline-1.5s", "preemptive,through=stt")


def test_stream_and_batch_use_the_published_savings_as_bounds() -> None:
    streamed = what_if("pipeline-sequential", "stream=llm")
    assert streamed["llm"] == [300, 1200]  # 800 − 500, 1500 − 300
    assert what_if("pipeline-sequential", "stream=stt,saving_ms=250")["stt"] == [50, 250]
    assert what_if("pipeline-1.5s", "batch=tts")["tts_first_audio"] == [400, 500]  # +100–200
    with pytest.raises(LeverError, match="acts on llm"):
        what_if("pipeline-1.5s", "stream=llm")


def test_lever_deltas_add_up_to_the_change_in_ttfat() -> None:
    levers = ["vad_silence=300", "codec=opus10", "preemptive,mismatch=0.3", "model=groq-llama"]
    steps = project_bounds(load_preset("pipeline-ranges"), [parse_lever(s) for s in levers])
    summed = sum(sum(d.values()) for d in deltas(steps))
    np.testing.assert_allclose(steps[0].total_ms() + summed, steps[-1].total_ms())


def test_critical_path_contributions_sum_to_the_longer_chain() -> None:
    durations = {
        k: np.array([v]) for k, v in {"endpointing": 300.0, "stt": 100.0, "llm": 250.0}.items()
    }
    overlap = Overlap(("llm",), ("endpointing", "stt"), 200.0)
    contributions = critical_path(durations, [overlap])
    assert contributions["llm"].tolist() == [50.0]  # starts at 200, ends at 450, 50 past 400
    assert sum(c[0] for c in contributions.values()) == 450.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("warp_drive=9", "unknown lever 'warp_drive'"),
        ("vad_silence", "needs a value"),
        ("vad_silence=300,frm=500", "takes no parameter 'frm'"),
        ("vad_silence=-5", "≥ 0"),
        ("codec=mp3", "pcm16"),
        ("hedge=1.5", "whole number"),
        ("spec_decode,alpha=1.5", "acceptance rate"),
        ("stream=asr", "stt, llm, tts"),
        ("rtt=40,term=nope", "term=nope is not in this budget"),
    ],
)
def test_bad_levers_say_how_to_fix_them(text: str, message: str) -> None:
    with pytest.raises(LeverError, match=message):
        project_bounds(load_preset("realtime-typical"), [parse_lever(text)])


def test_missing_target_term_names_the_budget_terms() -> None:
    budget = budget_from_mapping({"terms": {"llm_ttft": 300}})
    with pytest.raises(LeverError, match="terms: llm_ttft"):
        project_bounds(budget, [parse_lever("jitter_buffer=40")])


def test_every_lever_is_documented() -> None:
    for lever in LEVERS.values():
        assert lever.usage.startswith(lever.name) and lever.summary and lever.cite
