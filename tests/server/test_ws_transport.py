"""The WebSocket transport end to end on 127.0.0.1: a real aiohttp server, the real caller
client with a simulated network, and a scripted session port (so only the transport's own
timing is under test)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import numpy as np
import pytest
from scripted_port import PortStack

from earshot.clock import SystemClock
from earshot.server.app import build_app
from earshot.server.client import CallClient, NetConditions
from earshot.server.config import ServerConfig
from earshot.server.run import serving
from earshot.server.stack_choice import configure_stack


def caller_audio(seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)


async def one_call(tmp: Path, net: NetConditions, seconds: float = 2.0):
    config = ServerConfig(port=0, out_dir=tmp)
    app = build_app(config)
    stack = PortStack()
    configure_stack(app, stack)
    async with serving(config, app) as url:
        client = CallClient(url.replace("http", "ws") + "/ws", SystemClock(), net, tail_ms=8000)
        result = await client.run(caller_audio(seconds))
    return stack, result


def test_network_terms_match_the_configured_delay(tmp_path: Path) -> None:
    stack, result = asyncio.run(one_call(tmp_path, NetConditions(delay_ms=40.0)))
    assert result.error is None
    port = stack.ports[0]
    transport = stack.transports[0]
    est = transport.estimate()  # type: ignore[attr-defined]
    assert est is not None
    assert 80.0 <= est.rtt_ms < 100.0
    bound = est.error_bound_ms
    ups = [f.arrival_ms - (f.capture_ms + 20.0) for f in port.frames if not f.concealed]
    assert len(ups) >= 80  # a few may come after their slot on a loaded machine
    assert abs(float(np.median(ups)) - 40.0) <= bound
    first = next(r for r in port.reports if r.first_sample_ms is not None)
    sent = next(o for o in port.sent if o.response_id == 1)
    assert first.first_received_ms is not None
    network_out = first.first_received_ms - sent.sent_ms
    assert abs(network_out - 40.0) <= bound
    playout = first.first_sample_ms - first.first_received_ms
    assert playout == pytest.approx(40.0, abs=1.0)  # the client's lead, measured
    assert port.reports[-1].played_samples == len(port.reply)
    # What the client recorded starts where it said it heard the reply.
    agent = result.agent
    onset_ms = np.flatnonzero(np.abs(agent) > 0)[0] / 16.0
    assert abs(onset_ms - (first.client_ms - (first.at_ms - first.first_sample_ms))) < 2.0


def test_jitter_and_ten_percent_loss_do_not_break_the_call(tmp_path: Path) -> None:
    net = NetConditions(delay_ms=30.0, jitter_ms=30.0, loss=0.1, seed=5)
    stack, result = asyncio.run(one_call(tmp_path, net, seconds=3.0))
    assert result.error is None
    port = stack.ports[0]
    assert result.lost_up > 5
    concealed = [f for f in port.frames if f.concealed]
    lost = set(result.lost_up_seqs)
    delivered = [k for k in range(result.sent_up) if k not in lost]
    inner = [k for k in lost if delivered[0] < k < delivered[-1]]
    assert len(concealed) >= len(inner)  # every lost frame between two received was concealed
    captures = [f.capture_ms for f in port.frames]
    assert all(b > a for a, b in itertools.pairwise(captures))
    transport = stack.transports[0]
    est = transport.estimate()  # type: ignore[attr-defined]
    ups = [f.arrival_ms - (f.capture_ms + 20.0) for f in port.frames if not f.concealed]
    assert 30.0 - est.error_bound_ms <= float(np.min(ups)) <= 60.0 + est.error_bound_ms
    held = [f.release_ms - f.arrival_ms for f in port.frames if not f.concealed]
    assert max(held) > 0  # the adaptive buffer held frames against the jitter
    assert port.reports and port.reports[-1].played_samples > 0


def test_opus_call_with_loss_is_concealed_by_libopus(tmp_path: Path) -> None:
    async def main():
        config = ServerConfig(port=0, out_dir=tmp_path)
        app = build_app(config)
        stack = PortStack()
        configure_stack(app, stack)
        net = NetConditions(delay_ms=10.0, loss=0.1, seed=2)
        t = np.arange(16000 * 2) / 16000.0
        voice = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)
        async with serving(config, app) as url:
            client = CallClient(
                url.replace("http", "ws") + "/ws",
                SystemClock(),
                net,
                codec="opus",
                tail_ms=8000,
            )
            result = await client.run(voice)
        return stack, result

    stack, result = asyncio.run(main())
    assert result.error is None
    port = stack.ports[0]
    concealed = [f for f in port.frames if f.concealed]
    # A frame lost before the first or after the last delivered one has no neighbour to reveal
    # the gap (the stream starts or ends there), so only the inner losses must be concealed.
    lost = set(result.lost_up_seqs)
    delivered = [k for k in range(result.sent_up) if k not in lost]
    inner = [k for k in lost if delivered[0] < k < delivered[-1]]
    assert len(inner) > 3 and len(concealed) >= len(inner)
    # libopus PLC continues the tone through a lost frame instead of dropping to silence.
    n = len(port.frames)
    mid = [f for i, f in enumerate(port.frames) if f.concealed and 10 < i < n - 5]
    assert mid and max(int(np.abs(f.pcm).max()) for f in mid) > 1000
    # The Opus downlink decodes at the client: the scripted reply arrives as a tone.
    assert int(np.abs(result.agent).max()) > 1000
