"""`earshot converse --stack local` end to end on real recordings: Whisper with its early final
wired to the session's pause hints, llama.cpp's server in a child process, Piper — no stage
simulated. Simulated clock (compute charged), so it runs faster than real time; nothing is
asserted about durations."""

from __future__ import annotations

import json
from pathlib import Path

from earshot.audio.io import write_wav_atomic
from earshot.cli import main
from earshot.evals.tracks import build_caller_track, load_clips


def test_local_stack_converses_with_no_simulated_stage(tmp_path: Path, speech_dir: Path) -> None:
    clips = load_clips(
        [
            speech_dir / "realtimestt_ljspeech_LJ001-0008.wav",
            speech_dir / "realtimestt_ljspeech_LJ001-0002.wav",
        ]
    )
    track, _ = build_caller_track(clips, gap_ms=7000, lead_ms=500, tail_ms=7000)
    caller = tmp_path / "caller.wav"
    write_wav_atomic(caller, track, 16_000)
    out = tmp_path / "out"
    code = main(
        [
            "converse",
            str(caller),
            "--stack",
            "local",
            "--simulated-clock",
            "--quiet",
            "--out",
            str(out),
            "--no-barge-in",
        ]
    )
    assert code == 0
    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert len(turns) == 2
    assert "surpassed" in turns[0]["user_text"].lower()
    assert "modern" in turns[1]["user_text"].lower()
    for turn in turns:
        assert turn["stt_early_final"] is True  # the pause hint reached Whisper and held
        assert turn["stt_decode_ms"]
        assert turn["agent_text"] and turn["heard_text"]
        assert abs(sum(turn["terms_ms"].values()) - turn["ttfat_ms"]) < 0.01
    rows = {
        line.split("|")[1].strip(): line
        for line in (out / "report.md").read_text().splitlines()
        if line.startswith("| ") and line.count("|") == 5  # stage, backend, kind, outcome
    }
    # Only the clock is simulated here (virtual time); every model stage is real.
    for stage, name in (("stt", "whisper, tiny.en"), ("llm", "llama.cpp"), ("tts", "piper")):
        assert name in rows[stage] and rows[stage].endswith("| real | ok |"), rows[stage]
    assert "SIMULATED" in rows["clock"]
