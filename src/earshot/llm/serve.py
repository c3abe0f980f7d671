"""``earshot llm serve``: llama.cpp's OpenAI-compatible server on the bundled (or any) GGUF.

It runs ``llama_cpp.server`` (extra ``local-llm``, which includes ``llama-cpp-python[server]``)
with uvicorn, loopback only by default, so any OpenAI-compatible client —
``earshot converse --llm openai --llm-base-url http://127.0.0.1:8000/v1 --llm-model smollm2``
— talks to a real local LLM server. `ServerProcess` runs the same server as a child process on
a free port: that is how `earshot.llm.local.LocalLLM` uses llama.cpp.

``OMP_WAIT_POLICY=PASSIVE`` is set before llama.cpp loads (unless set already) and the model
is loaded with ``use_extra_bufts = False``: a native build of llama.cpp crashes in the AMX
weight-repacking path on some CPUs, and Q4_1 weights gain nothing from repacking.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from earshot.llm.base import LlmError
from earshot.llm.bundled import EXTRA, bundled_model_path

DEFAULT_PORT = 8000
MODEL_ALIAS = "smollm2"
"""The model name the server answers to with the bundled model (``--llm-model smollm2``)."""


def check_installed() -> None:
    """Raise ImportError naming the extra if llama-cpp-python's server parts are missing."""
    for module in ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            raise ImportError(
                f"the local LLM needs llama-cpp-python[server] (built from source, ~7-15 min): "
                f"CMAKE_ARGS='-DGGML_NATIVE=OFF' pip install '{EXTRA}'"
            )


@contextlib.contextmanager
def no_extra_buffers(llama_cpp: Any) -> Iterator[None]:
    """Models loaded inside get ``use_extra_bufts = False`` (llama-cpp-python has no keyword
    for it: its default model parameters are wrapped for the duration)."""
    defaults = llama_cpp.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = defaults()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = defaults


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    model_path: Path | None = None,
    *,
    n_threads: int = 1,
    n_ctx: int = 2048,
    alias: str | None = None,
) -> None:
    """Serve ``/v1/chat/completions`` (streaming) until interrupted.

    Raises:
        ImportError: llama-cpp-python's server parts are missing (names the extra).
        ValueError: ``model_path`` does not exist.
    """
    check_installed()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts
    import llama_cpp

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
    alias = alias or (MODEL_ALIAS if model_path is None else path.stem)
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


class ServerProcess:
    """`serve` in a child process on a free loopback port, its output kept in a log file.

    Args:
        model_path: the GGUF file.
        n_threads: llama.cpp threads.
        n_ctx: context window (tokens).
        startup_timeout_s: how long `start` waits for the server to answer.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        n_threads: int = 1,
        n_ctx: int = 2048,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.model_path = model_path
        self.alias = MODEL_ALIAS
        self._args = ["--model", str(model_path), "--threads", str(n_threads)]
        self._args += ["--n-ctx", str(n_ctx), "--alias", self.alias]
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="earshot-llm-", suffix=".log")  # noqa: SIM115
        self.port = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        """The server's output so far."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def start(self) -> None:
        """Start the server and wait until it answers.

        Raises:
            LlmError: it exited or did not answer within the start-up time-out (the message
                holds the end of its output).
        """
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        command = [sys.executable, "-m", "earshot.llm.serve", "--port", str(self.port)]
        self._proc = subprocess.Popen(
            [*command, *self._args], stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        weakref.finalize(self, _terminate, self._proc)
        waiter = threading.Event()
        for _ in range(int(self._startup_timeout_s / 0.05)):
            if self._proc.poll() is not None:
                raise LlmError(f"the llama.cpp server exited at start-up: {self.log()[-600:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return
            waiter.wait(0.05)
        self.stop()
        raise LlmError(
            f"the llama.cpp server did not answer within {self._startup_timeout_s:g} s: "
            f"{self.log()[-600:]}"
        )

    def warm_up(self, system_prompt: str) -> None:
        """Evaluate the system prompt once so every later request reuses it from the KV cache.

        Raises:
            LlmError: the request failed.
        """
        messages = [{"role": "user", "content": "Hello."}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        body = {"model": self.alias, "messages": messages, "max_tokens": 1}
        try:
            response = httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=60.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise LlmError(f"the llama.cpp server failed its warm-up request: {exc}") from exc

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit within 5 s)."""
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    _serve_options(s)
    s.set_defaults(func=_run)

    def _usage(_: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_usage)


def _serve_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    s.add_argument("--n-ctx", type=int, default=2048, help="context window in tokens")
    s.add_argument("--alias", help=f"the model name to answer to (default {MODEL_ALIAS})")


def _run(args: argparse.Namespace) -> int:
    try:
        serve(
            args.host,
            args.port,
            args.model,
            n_threads=args.threads,
            n_ctx=args.n_ctx,
            alias=args.alias,
        )
    except (ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m earshot.llm.serve``: the server alone (what `ServerProcess` runs)."""
    p = argparse.ArgumentParser(prog="python -m earshot.llm.serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--model", type=Path)
    _serve_options(p)
    return _run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
