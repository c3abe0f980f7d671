"""LocalAgreement-2 policy on synthetic timelines: exact schedule and commit decisions."""

from __future__ import annotations

import pytest

from earshot.stt.base import WordSegment
from earshot.stt.local_agreement import AgreementConfig, LocalAgreement, common_prefix, word_key

MS = 16  # samples per ms at 16 kHz


def hyp(*texts: str) -> list[WordSegment]:
    return [WordSegment(t, 300.0 * i, 300.0 * i + 250.0) for i, t in enumerate(texts)]


def test_keys_ignore_case_and_punctuation() -> None:
    assert word_key("Hello,") == word_key("hello") == "hello"
    assert word_key("don't") == "don't"
    assert common_prefix(hyp("So", "my", "fellow"), hyp("so", "my,", "yellow")) == 2


def test_first_decode_waits_for_min_audio_then_interval() -> None:
    policy = LocalAgreement(AgreementConfig(interval_ms=1000, min_audio_ms=600, cost_factor=0))
    assert not policy.push(599 * MS)
    assert policy.push(1 * MS)  # 600 ms: the first decode is due
    assert policy.decode_started() == 600 * MS
    assert not policy.push(2000 * MS)  # one decode at a time
    policy.decode_done(hyp("and"))
    assert policy.due()  # 2600 - 600 >= 1000 ms
    assert policy.decode_started() == 2600 * MS
    policy.decode_done(hyp("and", "so"))
    assert not policy.push(999 * MS)
    assert policy.push(1 * MS)


def test_a_slow_decode_stretches_the_interval() -> None:
    policy = LocalAgreement(AgreementConfig(interval_ms=500, min_audio_ms=0, cost_factor=2.0))
    policy.push(100 * MS)
    policy.decode_started()
    policy.decode_done(hyp("a"), cost_ms=800.0)  # the next start waits 1600 ms of audio
    assert not policy.push(1599 * MS)
    assert policy.push(1 * MS)


def test_words_commit_when_two_decodes_agree() -> None:
    policy = LocalAgreement(AgreementConfig(min_audio_ms=0))
    policy.push(1000 * MS)
    policy.decode_started()
    assert policy.decode_done(hyp("and", "so", "am")) == "and so am"
    assert policy.committed == ()  # one decode is no agreement
    policy.decode_started()
    assert policy.decode_done(hyp("And", "so", "my", "fellow")) == "And so my fellow"
    assert [w.text for w in policy.committed] == ["And", "so"]  # as the newer decode wrote them
    policy.decode_started()
    policy.decode_done(hyp("And", "so", "my", "fellow", "Americans"))
    assert [w.text for w in policy.committed] == ["And", "so", "my", "fellow"]
    assert policy.partial == "And so my fellow Americans"


def test_committed_words_never_change() -> None:
    policy = LocalAgreement(AgreementConfig(min_audio_ms=0))
    for words in (("ask", "not"), ("ask", "not", "what")):
        policy.decode_started()
        policy.decode_done(hyp(*words))
    assert [w.text for w in policy.committed] == ["ask", "not"]
    policy.decode_started()
    policy.decode_done(hyp("asked", "knot", "what"))  # a rewrite of committed words
    assert [w.text for w in policy.committed] == ["ask", "not"]
    assert policy.partial == "ask not what"


def test_reset_starts_a_new_turn_and_misuse_is_refused() -> None:
    policy = LocalAgreement(AgreementConfig(min_audio_ms=0))
    policy.push(100 * MS)
    policy.decode_started()
    with pytest.raises(RuntimeError, match="in flight"):
        policy.decode_started()
    policy.decode_done(hyp("x"))
    with pytest.raises(RuntimeError, match="without decode_started"):
        policy.decode_done(hyp("x"))
    policy.reset()
    assert policy.num_samples == 0 and policy.partial == "" and not policy.in_flight
    with pytest.raises(ValueError, match="num_samples"):
        policy.push(-1)
    with pytest.raises(ValueError, match="interval_ms"):
        AgreementConfig(interval_ms=0)
