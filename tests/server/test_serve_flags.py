"""`earshot serve --pstn-assumed-ms`: parsed, range-checked, and carried to the Twilio
endpoint's report line (the transport's own description, no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot.cli import build_parser
from earshot.clock import SimulatedClock
from earshot.protocols.routes import TWILIO_OPTIONS_KEY
from earshot.server.config import ServerConfig
from earshot.server.run import serve_app
from earshot.server.stack_choice import make_stack
from earshot.transports.twilio import TwilioOptions, TwilioTransport


def test_the_flag_defaults_to_the_low_end_of_the_published_range() -> None:
    args = build_parser().parse_args(["serve"])
    assert args.pstn_assumed_ms == 150.0
    args = build_parser().parse_args(["serve", "--pstn-assumed-ms", "320"])
    assert args.pstn_assumed_ms == 320.0


def test_a_negative_assumption_is_refused_with_the_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve", "--pstn-assumed-ms", "-5"])
    assert exc.value.code == 2
    assert "--pstn-assumed-ms" in capsys.readouterr().err


def test_the_report_states_the_assumption_it_was_given() -> None:
    options = TwilioOptions(pstn_assumed_ms=320.0)
    transport = TwilioTransport(None, SimulatedClock(), options=options)  # type: ignore[arg-type]
    assert "ASSUMED 320 ms" in transport.description


def test_serve_hands_the_assumption_to_the_twilio_endpoint(tmp_path: Path) -> None:
    options = TwilioOptions(pstn_assumed_ms=320.0)
    app = serve_app(ServerConfig(port=0, out_dir=tmp_path), make_stack(fake=True), options)
    assert app[TWILIO_OPTIONS_KEY].pstn_assumed_ms == 320.0
