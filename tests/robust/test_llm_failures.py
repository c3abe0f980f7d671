"""A broken LLM server: failed turns are counted, shown and excluded, and the run says so.

Real: the whole loop on a real recording, the OpenAI-compatible client, and a real HTTP server
on 127.0.0.1 (`sse_server`) that fails; `earshot` runs as a subprocess.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from robust_cli import earshot
from sse_server import ErrorReply, SseReply, SseServer, Stall

FALLBACK = "Sorry, I'm having trouble answering right now."


def _turns(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]


def _converse(wav: Path, out: Path, url: str, *extra: str):  # type: ignore[no-untyped-def]
    return earshot(
        "converse", wav, "--out", out, "--simulated-clock", "--quiet",
        "--llm", "openai", "--llm-base-url", url, "--llm-model", "m", *extra,
    )  # fmt: skip


def test_a_500_on_every_request_is_a_failed_run_not_a_fine_one(
    short_wav: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with SseServer() as server:
        server.default_reply = ErrorReply(500, '{"error": {"message": "model crashed"}}')
        run = _converse(short_wav, out, server.base_url)
        assert len(server.requests) == 1
    assert run.returncode == 3, run.stderr
    assert run.last_line.startswith("FAILED: 1 of 1 turns failed (llm on every turn)")
    assert "llm error (first, turn 1): LLM server at" in run.stdout and "HTTP 500" in run.stdout
    assert "— FAILED on 1 of 1 turns" in run.stdout  # the component line, not "real" alone
    assert "0 measured turns, 1 failed" in run.stdout
    (turn,) = _turns(out)
    assert turn["agent_text"] == FALLBACK and "500" in str(turn["llm_error"])
    report = (out / "report.md").read_text()
    assert "**✗ 1 of 1 turns FAILED** (llm failed on every turn)" in report
    assert "No measured turn: there is nothing to check against the budget." in report
    assert "within budget" not in report and "TTFAT p50" not in report
    assert "**FAILED** (llm): LLM server at" in report
    assert "| llm | openai-compat(m @ " in report and "**FAILED on 1 of 1 turns** |" in report
    assert not (out / "latency.png").exists()  # nothing measured to draw
    manifest = json.loads((out / "earshot-run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["not_written"]["latency.png"] == "no measured turn to draw"


def test_nothing_listening_on_the_port_is_a_failed_run(short_wav: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = _converse(short_wav, tmp_path / "run", f"http://127.0.0.1:{port}/v1")
    assert run.returncode == 3
    assert "refused the connection" in run.stdout
    assert run.last_line.startswith("FAILED: 1 of 1 turns failed")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:99999/v1", "Port out of range"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("ftp://127.0.0.1/v1", "must start with http:// or https://"),
        ("http:///v1", "has no host name"),
    ],
)
def test_a_malformed_url_is_refused_at_start_up(
    short_wav: Path, tmp_path: Path, url: str, why: str
) -> None:
    out = tmp_path / "never"
    run = _converse(short_wav, out, url)
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("earshot converse: error: argument --llm-base-url: ") and why in line
    assert not out.exists() and run.stdout == ""


def test_a_redirect_is_reported_as_a_redirect(short_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with SseServer() as server:
        server.default_reply = ErrorReply(307, "", (("Location", "http://elsewhere:8000/v1"),))
        run = _converse(short_wav, out, server.base_url)
    assert run.returncode == 3
    error = str(_turns(out)[0]["llm_error"])
    assert "answered with a redirect (HTTP 307 to http://elsewhere:8000/v1)" in error
    assert "set --llm-base-url to the address it redirects to" in error
    assert "server-sent events" not in error


def test_a_time_out_names_the_flag_that_sets_it(short_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with SseServer() as server:
        server.queue(SseReply((Stall(10.0),)))
        run = _converse(short_wav, out, server.base_url, "--llm-first-token-timeout-ms", "300")
    assert run.returncode == 3
    error = str(_turns(out)[0]["llm_error"])
    assert "no first token within 300 ms" in error
    assert "raise --llm-first-token-timeout-ms" in error


def test_credentials_never_reach_the_terminal_or_the_files(short_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    key = "sk-test-0123456789abcdefXYZ"
    with SseServer() as server:
        # The server echoes the bearer token it got in its error body, as some proxies do.
        server.default_reply = ErrorReply(
            401, json.dumps({"error": {"message": f"invalid key: Bearer {key}"}})
        )
        url = server.base_url.replace("http://", "http://alice:hunter2pass@")
        run = earshot(
            "converse", short_wav, "--out", out, "--simulated-clock", "--quiet",
            "--llm", "openai", "--llm-base-url", url, "--llm-model", "m",
            env_extra={"EARSHOT_LLM_API_KEY": key},
        )  # fmt: skip
        sent = server.requests[0].headers["authorization"]
    assert sent.startswith("Basic ")  # the URL's credentials are used, only never shown
    assert run.returncode == 3
    texts = {
        "stdout": run.stdout,
        "stderr": run.stderr,
        **{p.name: p.read_text() for p in out.iterdir() if p.suffix in (".md", ".jsonl", ".json")},
    }
    for where, text in texts.items():
        assert "hunter2pass" not in text, where
        assert key not in text and "0123456789abcdef" not in text, where
    assert "http://***@127.0.0.1:" in texts["report.md"]
    assert "HTTP 401" in texts["turns.jsonl"] and "Bearer ***" in texts["turns.jsonl"]
