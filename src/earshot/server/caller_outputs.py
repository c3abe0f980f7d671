"""``earshot call``'s outputs, from the caller's side: the same files as ``earshot converse``.

* ``conversation.wav`` — stereo 16 kHz on the **caller's** clock: left = the caller as sent,
  right = the agent as the caller played it. The silence between the end of the caller's
  speech and the first agent sample in this file is the TTFAT the caller lived through.
* ``turns.jsonl`` — the server's turn records (marks on the call's session clock, terms that
  sum to TTFAT, ``heard_start`` from this client's playback reports).
* ``report.md`` and ``latency.png`` — rendered from those records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from earshot.audio.frames import SAMPLE_RATE_HZ
from earshot.audio.io import write_text_atomic
from earshot.metrics.budget import TermBudget, load_budget
from earshot.metrics.plot import plot_latency
from earshot.metrics.report import write_report_md
from earshot.metrics.stats import summarize
from earshot.metrics.turn import NetworkTiming, TurnRecord
from earshot.server.client import ClientResult, NetConditions
from earshot.transports.file import write_conversation

_KNOWN = {
    "turn",
    "marks_ms",
    "ttfat_ms",
    "terms_ms",
    "user_text",
    "agent_text",
    "heard_text",
    "interrupted",
    "unfinished",
    "barge_ins",
    "terms_measured",
    "terms_estimated",
    "sync_error_ms",
}


def record_from_json(obj: dict[str, Any]) -> TurnRecord:
    """A `TurnRecord` rebuilt from its ``turns.jsonl`` object (its terms come out the same).

    Raises:
        KeyError: the object lacks ``turn`` or ``marks_ms``.
    """
    turn = TurnRecord(
        turn=int(obj["turn"]),
        marks_ms={k: float(v) for k, v in obj["marks_ms"].items()},
        user_text=obj.get("user_text", ""),
        agent_text=obj.get("agent_text", ""),
        heard_text=obj.get("heard_text", ""),
        interrupted=bool(obj.get("interrupted", False)),
        unfinished=bool(obj.get("unfinished", False)),
    )
    terms = obj.get("terms_ms") or {}
    measured = obj.get("terms_measured")
    if measured is not None:
        turn.network = NetworkTiming(
            network_in_ms=terms.get("network_in") if "network_in" in measured else None,
            uplink_jitter_buffer_ms=terms.get("uplink_jitter_buffer")
            if "uplink_jitter_buffer" in measured
            else None,
            network_out_ms=terms.get("network_out") if "network_out" in measured else None,
            client_playout_ms=terms.get("client_playout") if "client_playout" in measured else None,
            sync_error_ms=obj.get("sync_error_ms"),
        )
    turn.extra = {k: v for k, v in obj.items() if k not in _KNOWN}
    return turn


def write_caller_outputs(
    out: Path,
    result: ClientResult,
    *,
    url: str,
    caller_path: str,
    net: NetConditions,
    budget: TermBudget | None = None,
) -> list[TurnRecord]:
    """Write the four files into ``out`` (created) and return the turn records."""
    out.mkdir(parents=True, exist_ok=True)
    budget = budget or load_budget(None, preset="1.5s")
    write_conversation(out / "conversation.wav", result.caller, result.agent)
    turns = [record_from_json(r) for r in result.turns]
    lines = "".join(json.dumps(r) + "\n" for r in result.turns)
    write_text_atomic(out / "turns.jsonl", lines)
    components = {
        "transport": "WebSocket client (earshot call): real network on this machine plus the "
        "simulated conditions below; playout simulated (recorded at its scheduled time)",
        "server": f"{url} (its components are in the server's own report: {result.out_dir})",
    }
    run_info: dict[str, Any] = {
        "caller": caller_path,
        "call": result.call_id,
        "net delay ms": net.delay_ms,
        "net jitter ms": net.jitter_ms,
        "net loss": net.loss,
        "frames lost (up/down)": f"{result.lost_up}/{result.lost_down}",
        "late uplink frames": result.late_frames,
        "recording s": round(len(result.caller) / SAMPLE_RATE_HZ, 2),
    }
    write_report_md(
        out / "report.md",
        turns,
        summarize(turns),
        budget,
        components,
        run_info,
        plot_file="latency.png",
    )
    if any(t.complete for t in turns):
        plot_latency(out / "latency.png", turns, budget)
    return turns
