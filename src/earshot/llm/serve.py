"""``earshot llm serve``: llama.cpp's OpenAI-compatible server on the bundled (or any) GGUF.

It runs ``llama_cpp.server`` (extra ``local-llm``, which includes ``llama-cpp-python[server]``)
in this process with uvicorn, loopback only by default, so any OpenAI-compatible client —
``earshot converse --llm openai --llm-base-url http://127.0.0.1:8000/v1`` — talks to a real
local LLM server. Same thread and wait-policy choices as `earshot.llm.local.LocalLLM`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from earshot.llm.local import EXTRA, bundled_model_path, import_llama_cpp, no_extra_buffers

DEFAULT_PORT = 8000
MODEL_ALIAS = "smollm2"
"""The model name the server answers to with the bundled model (``--llm-model smollm2``)."""


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    model_path: Path | None = None,
    *,
    n_threads: int = 1,
    n_ctx: int = 2048,
) -> None:
    """Serve ``/v1/chat/completions`` (streaming) until interrupted.

    Raises:
        ImportError: llama-cpp-python's server parts are missing (names the extra).
        ValueError: ``model_path`` does not exist.
    """
    llama_cpp = import_llama_cpp()
    try:
        import uvicorn
        from llama_cpp.server.app import create_app
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError as exc:
        raise ImportError(
            f"earshot llm serve needs llama-cpp-python[server]: pip install '{EXTRA}'"
        ) from exc
    path = model_path if model_path is not None else bundled_model_path()
    if not path.is_file():
        raise ValueError(f"GGUF model {path} not found; pass an existing .gguf file")
    alias = MODEL_ALIAS if model_path is None else path.stem
    with no_extra_buffers(llama_cpp):
        app = create_app(
            server_settings=ServerSettings(host=host, port=port),
            model_settings=[
                ModelSettings(
                    model=str(path),
                    model_alias=alias,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_ctx=n_ctx,
                    verbose=False,
                )
            ],
        )
    print(
        f"serving {path.name} as {alias!r} on http://{host}:{port}/v1", file=sys.stderr, flush=True
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``earshot llm serve``."""
    p = sub.add_parser("llm", help="local LLM tools (llama.cpp)")
    verbs = p.add_subparsers(dest="llm_command", metavar="VERB")
    s = verbs.add_parser(
        "serve",
        help="start llama.cpp's OpenAI-compatible server with the bundled model",
        description="Serve the bundled SmolLM2-135M-Instruct (or --model GGUF) through "
        "llama.cpp's OpenAI-compatible API; use it with --llm openai --llm-base-url "
        f"http://127.0.0.1:{DEFAULT_PORT}/v1 --llm-model {MODEL_ALIAS}.",
    )
    s.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    s.add_argument("--model", type=Path, help="a GGUF file (default: the bundled SmolLM2)")
    s.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    s.set_defaults(func=_run)

    def _usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_usage)


def _run(args: argparse.Namespace) -> int:
    try:
        serve(args.host, args.port, args.model, n_threads=args.threads)
    except (ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
