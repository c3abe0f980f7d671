"""`earshot eval stt`: jiwer WER per recording (pure scorer), and real pocketsphinx runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from earshot.cli import main
from earshot.evals.harness import CommonSettings, execute
from earshot.evals.manifest import bundled_data_dir
from earshot.evals.stt import EVALUATION
from earshot.evals.stt_score import SttOptions, summarize, word_errors


def test_word_errors_counts_after_normalisation() -> None:
    got = word_errors("Has never been surpassed.", "as never been surpassed")
    assert got == {
        "wer": 0.25,
        "reference_words": 4,
        "hits": 3,
        "substitutions": 1,
        "deletions": 0,
        "insertions": 0,
    }
    assert word_errors("Hello, World!", "hello world")["wer"] == 0.0
    assert word_errors("a b", "")["deletions"] == 2
    assert word_errors("a", "a b c")["wer"] == 2.0  # insertions can exceed the reference
    with pytest.raises(ValueError, match="no words"):
        word_errors(" .. ", "x")


def test_corpus_wer_weights_by_words() -> None:
    results = [
        {"backend": "a", "wer": 1.0, "reference_words": 1, "substitutions": 1, "deletions": 0,
         "insertions": 0},
        {"backend": "a", "wer": 0.0, "reference_words": 9, "substitutions": 0, "deletions": 0,
         "insertions": 0},
    ]  # fmt: skip
    got = summarize(results, ["a", "b"])
    assert got["a"]["corpus_wer"] == 0.1 and got["a"]["mean_wer"] == 0.5
    assert got["b"] == {
        "recordings": 0, "reference_words": 0, "errors": 0,
        "corpus_wer": None, "mean_wer": None, "max_wer": None,
    }  # fmt: skip


def _two_clips(folder: Path) -> Path:
    src = bundled_data_dir() / "speech"
    (folder / "clips").mkdir(parents=True)
    lines = []
    for name, text in (
        ("realtimestt_ljspeech_LJ001-0008.wav", "has never been surpassed."),
        ("realtimestt_ljspeech_LJ001-0002.wav", "in being comparatively modern."),
    ):
        shutil.copy(src / name, folder / "clips" / name)
        lines.append(
            json.dumps(
                {"path": f"clips/{name}", "kind": "speech", "language": "en", "transcript": text}
            )
        )
    lines.append(json.dumps({"path": f"clips/{name}", "kind": "speech", "language": "de"}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("mode", ["streaming", "batch"])
def test_pocketsphinx_on_real_recordings(tmp_path: Path, mode: str) -> None:
    data = _two_clips(tmp_path / "data")
    out = tmp_path / mode
    opts = SttOptions(backends=("pocketsphinx",), data_dir=data, out_dir=out, mode=mode)  # type: ignore[arg-type]
    done = execute(EVALUATION, opts, CommonSettings(out, quiet=True))
    doc = json.loads((out / "stt.json").read_text(encoding="utf-8"))
    assert doc["counts"] == {"planned": 2, "run": 2}  # the German entry has no transcript
    first = doc["recordings"][0]
    assert first["path"] == "clips/realtimestt_ljspeech_LJ001-0008.wav"
    assert first["hypothesis"].endswith("never been surpassed")
    assert first["wer"] == word_errors(first["reference"], first["hypothesis"])["wer"] <= 0.25
    summary = doc["summary"]["pocketsphinx"]
    assert summary["recordings"] == 2 and summary["reference_words"] == 8
    assert 0.0 <= summary["corpus_wer"] <= 1.0
    assert (out / "stt.png").read_bytes()[:4] == b"\x89PNG"
    assert "corpus WER" in (out / "stt.txt").read_text(encoding="utf-8")
    assert done.report.exit_code == 0


def test_whisper_scores_on_the_same_harness(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper", reason="needs the whisper extra")
    data = _two_clips(tmp_path / "data")
    out = tmp_path / "whisper"
    opts = SttOptions(backends=("whisper", "pocketsphinx"), data_dir=data, out_dir=out)
    execute(EVALUATION, opts, CommonSettings(out, quiet=True))
    doc = json.loads((out / "stt.json").read_text(encoding="utf-8"))
    assert [r["backend"] for r in doc["recordings"]] == ["whisper", "pocketsphinx"] * 2
    summary = doc["summary"]
    # Whisper tiny.en gets both LJ Speech phrases right; pocketsphinx does not.
    assert summary["whisper"]["corpus_wer"] == 0.0
    assert summary["pocketsphinx"]["corpus_wer"] > summary["whisper"]["corpus_wer"]


def test_unknown_backend_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "stt", "--stt", "nope", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown STT backend(s) nope; choose from pocketsphinx")
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_sigterm_keeps_the_recordings_scored(tmp_path: Path) -> None:
    """As a user's process manager would stop it: SIGTERM after the first trial."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    code = "import sys; from earshot.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", code, "eval", "stt", "--stt", "pocketsphinx", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "stt.trials.jsonl"
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "interrupted (SIGTERM)" in stdout
    doc = json.loads((out / "stt.json").read_text(encoding="utf-8"))
    assert doc["interrupted"] is True
    assert 1 <= doc["counts"]["run"] < 7
    assert len(log.read_text().splitlines()) == doc["counts"]["run"]
