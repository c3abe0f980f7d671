"""Calls against a real `earshot serve` app on 127.0.0.1 with the shipped fakes: two calls at
once share nothing, a malformed or oversized message ends only its own call, a client that
vanishes mid-reply leaves a clean server and complete outputs, a full server refuses, and the
token and origin checks hold."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from earshot.clock import SystemClock
from earshot.server import protocol as proto
from earshot.server.app import build_app
from earshot.server.client import CallClient
from earshot.server.config import CALLS_KEY, ServerConfig
from earshot.server.embedded import FakeStack
from earshot.server.run import serving
from earshot.server.stack_choice import configure_stack


def tone_caller(spans_s: list[tuple[float, float]], duration_s: float) -> np.ndarray:
    """A 220 Hz tone during each span (the fake energy VAD hears it as speech)."""
    sr = 16_000
    x = np.zeros(int(duration_s * sr), np.int16)
    t = np.arange(len(x)) / sr
    for a, b in spans_s:
        i, j = int(a * sr), int(b * sr)
        x[i:j] = (np.sin(2 * np.pi * 220 * t[i:j]) * 6000).astype(np.int16)
    return x


def server(tmp: Path, **config: object):
    cfg = ServerConfig(port=0, out_dir=tmp, **config)  # type: ignore[arg-type]
    app = build_app(cfg)
    configure_stack(app, FakeStack())
    return cfg, app


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


async def raw_hello(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    """Connect, say hello, answer clock-sync probes until ``ready``."""
    conn = await http.ws_connect(ws(url))
    await conn.send_str(proto.dump(proto.Hello()))
    while True:
        msg = await conn.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        parsed = proto.parse_server(msg.data)
        if isinstance(parsed, proto.Sync):
            await conn.send_str(
                proto.dump(proto.SyncReply(id=parsed.id, t0_ms=parsed.t0_ms, t1_ms=0, t2_ms=0))
            )
        elif isinstance(parsed, proto.Ready):
            return conn
        else:
            raise AssertionError(parsed)


async def until_error(conn: aiohttp.ClientWebSocketResponse) -> proto.ErrorMsg | None:
    async for msg in conn:
        if msg.type == aiohttp.WSMsgType.TEXT:
            parsed = proto.parse_server(msg.data)
            if isinstance(parsed, proto.ErrorMsg):
                return parsed
    return None


def test_two_calls_at_once_share_no_state(tmp_path: Path) -> None:
    async def main():
        cfg, app = server(tmp_path)
        async with serving(cfg, app) as url:
            one = CallClient(ws(url), SystemClock(), tail_ms=15_000)
            two = CallClient(ws(url), SystemClock(), tail_ms=15_000)
            a = tone_caller([(0.3, 1.3)], 3.5)
            b = tone_caller([(0.3, 1.0), (5.0, 5.8)], 8.5)
            return await asyncio.gather(one.run(a), two.run(b))

    ra, rb = asyncio.run(main())
    assert ra.error is None and rb.error is None
    assert ra.out_dir != rb.out_dir
    assert [t["turn"] for t in ra.turns] == [1]
    assert [t["turn"] for t in rb.turns] == [1, 2]
    for r, n in ((ra, 1), (rb, 2)):
        lines = (Path(r.out_dir) / "turns.jsonl").read_text().splitlines()
        assert len(lines) == n
        assert (Path(r.out_dir) / "report.md").exists()
        assert (Path(r.out_dir) / "conversation.wav").exists()
        rec = json.loads(lines[0])
        assert sum(rec["terms_ms"].values()) == pytest.approx(rec["ttfat_ms"], abs=0.01)
        assert rec["terms_measured"]  # measured from the caller's device


def test_malformed_and_oversized_messages_end_only_their_call(tmp_path: Path) -> None:
    async def main():
        cfg, app = server(tmp_path, max_message_bytes=4096)
        async with serving(cfg, app) as url, aiohttp.ClientSession() as http:
            good = CallClient(ws(url), SystemClock(), tail_ms=15_000)
            good_task = asyncio.ensure_future(good.run(tone_caller([(0.3, 1.3)], 3.5)))
            bad = await raw_hello(http, url)
            await bad.send_str("{not json")
            bad_error = await until_error(bad)
            big = await raw_hello(http, url)
            await big.send_bytes(b"\x01" * 10_000)
            big_error = await until_error(big)
            wrong = await raw_hello(http, url)
            await wrong.send_bytes(proto.pack_uplink(1, 0, 0.0, b"\x00" * 10))
            wrong_error = await until_error(wrong)
            return await good_task, bad_error, big_error, wrong_error

    good, bad, big, wrong = asyncio.run(main())
    assert bad is not None and bad.code == "bad_message" and "control message" in bad.message
    assert big is not None and big.code == "too_large"
    assert wrong is not None and "expected 640" in wrong.message
    assert good.error is None and len(good.turns) == 1


def test_client_vanishing_mid_reply_leaves_a_clean_server(tmp_path: Path) -> None:
    async def main():
        cfg, app = server(tmp_path)
        registry = app[CALLS_KEY]
        async with serving(cfg, app) as url, aiohttp.ClientSession() as http:
            conn = await raw_hello(http, url)
            caller = tone_caller([(0.1, 1.1)], 4.0)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            got_audio = False
            for k in range(len(caller) // 320):
                frame = caller[k * 320 : (k + 1) * 320].tobytes()
                await conn.send_bytes(proto.pack_uplink(1, k, k * 20.0, frame))
                try:
                    msg = await conn.receive(timeout=max(0.0, t0 + (k + 1) * 0.02 - loop.time()))
                except TimeoutError:
                    continue
                if msg.type == aiohttp.WSMsgType.TEXT:
                    parsed = proto.parse_server(msg.data)
                    if isinstance(parsed, proto.Sync):
                        await conn.send_str(
                            proto.dump(
                                proto.SyncReply(id=parsed.id, t0_ms=parsed.t0_ms, t1_ms=0, t2_ms=0)
                            )
                        )
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    got_audio = True
                    break
            assert got_audio, "the agent never started replying"
            sock = conn.get_extra_info("socket")
            sock.shutdown(socket.SHUT_RDWR)  # vanish: no close frame, no end message
            for _ in range(100):
                await asyncio.sleep(0.1)
                if registry.active_calls == 0:
                    break
            active_after = registry.active_calls
            again = CallClient(ws(url), SystemClock(), tail_ms=15_000)
            second = await again.run(tone_caller([(0.3, 1.3)], 3.5))
            return active_after, second

    active_after, second = asyncio.run(main())
    assert active_after == 0
    first_dir = sorted(p for p in tmp_path.iterdir() if p.is_dir())[0]
    records = [json.loads(x) for x in (first_dir / "turns.jsonl").read_text().splitlines()]
    assert records and records[-1]["unfinished"] is True  # the reply was playing
    assert (first_dir / "report.md").exists() and (first_dir / "conversation.wav").exists()
    assert second.error is None and len(second.turns) == 1


def test_full_server_refuses_with_a_clear_message(tmp_path: Path) -> None:
    async def main():
        cfg, app = server(tmp_path, max_calls=1)
        async with serving(cfg, app) as url, aiohttp.ClientSession() as http:
            first = await raw_hello(http, url)
            second = await http.ws_connect(ws(url))
            await second.send_str(proto.dump(proto.Hello()))
            refused = await until_error(second)
            async with http.get(f"{url}/healthz") as resp:
                health = await resp.json()
            await first.close()
            return refused, health

    refused, health = asyncio.run(main())
    assert refused is not None and refused.code == "server_full"
    assert "1 of 1 calls" in refused.message
    assert health["refused_total"] == 1


def test_token_and_origin_are_checked_on_connect(tmp_path: Path) -> None:
    async def main():
        cfg, app = server(tmp_path, token="s3cret", allowed_origins=("https://ok.example",))
        out: dict[str, int] = {}
        async with serving(cfg, app) as url, aiohttp.ClientSession() as http:
            for name, query, headers in (
                ("none", "", {}),
                ("wrong", "?token=nope", {}),
                ("good", "?token=s3cret", {}),
                ("bad_origin", "?token=s3cret", {"Origin": "https://evil.example"}),
                ("ok_origin", "?token=s3cret", {"Origin": "https://ok.example"}),
            ):
                try:
                    conn = await http.ws_connect(ws(url) + query, headers=headers)
                    out[name] = 101
                    await conn.close()
                except aiohttp.WSServerHandshakeError as exc:
                    out[name] = exc.status
        return out

    assert asyncio.run(main()) == {
        "none": 403,
        "wrong": 403,
        "good": 101,
        "bad_origin": 403,
        "ok_origin": 101,
    }


def test_exposed_host_needs_token_and_origins() -> None:
    with pytest.raises(ValueError, match="--token"):
        ServerConfig(host="0.0.0.0")
    with pytest.raises(ValueError, match="--allowed-origins"):
        ServerConfig(host="0.0.0.0", token="x")
    assert ServerConfig(host="0.0.0.0", token="x", allowed_origins=("https://a.example",))


def test_bye_to_a_client_that_already_left_is_no_server_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed message ends the call with an ``error``; the client then vanishes (TCP
    reset, no close frame). The server stopped reading at the error, so its socket is closed
    underneath while ``ws.closed`` is still False when the bye goes out after the call's
    outputs: that must not raise into aiohttp (found by benchmarks/bench_soak_server.py: one
    traceback per garbage caller). A slow report write (a loaded server) makes the reset land
    before the bye."""
    import time as time_mod

    from earshot.server import session_stack

    real_write = session_stack.write_report_md

    def slow_write(*args: object, **kwargs: object) -> None:
        time_mod.sleep(0.5)  # in the inference pool's thread, as on a busy server
        real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(session_stack, "write_report_md", slow_write)

    async def main() -> tuple[proto.ErrorMsg | None, int]:
        cfg, app = server(tmp_path)
        registry = app[CALLS_KEY]
        async with serving(cfg, app) as url, aiohttp.ClientSession() as http:
            conn = await raw_hello(http, url)
            await conn.send_str("{not json")
            error = await until_error(conn)
            conn._conn.transport.abort()  # type: ignore[union-attr]  # gone without a close
            for _ in range(100):
                await asyncio.sleep(0.1)
                if registry.active_calls == 0:
                    break
            return error, registry.active_calls

    with caplog.at_level("ERROR"):
        error, active_after = asyncio.run(main())
    assert error is not None and error.code == "bad_message"
    assert active_after == 0
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")], caplog.text
    folder = sorted(p for p in tmp_path.iterdir() if p.is_dir())[0]
    assert (folder / "report.md").exists()
