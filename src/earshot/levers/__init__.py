"""earshot.levers: the latency levers of the runtime, each a pure policy and a thin async shell.

* `hedge` — race N LLM requests (at once, or delayed past a TTFT threshold); first token wins.
* `cache` — replay a cached reply (text and audio) for an input seen before.
* `preemptive` — start the LLM on a stable partial transcript during the endpointing wait.
* `tools` / `filler` — tool calls, masked by a filler line only when they run long.
* `context` — a cache-friendly prompt: stable prefix, append-only history, old turns summarized.
* `budget_policy` — act (filler, hedge, shorter reply) when a stage runs past its budget line.

Every policy is synchronous and fed ``(input, now_ms)``; the shells move data, own tasks in a
`asyncio.TaskGroup` and read time only from the injected `earshot.clock.Clock`.
"""
