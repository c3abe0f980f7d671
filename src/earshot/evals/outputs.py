"""What every evaluation writes: ``<stem>.json``, ``<stem>.txt`` (its tables) and ``<stem>.png``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earshot.audio.io import write_text_atomic


def write_eval_outputs(
    out_dir: Path, stem: str, doc: dict[str, Any], text: str, plot: Callable[[Path], None]
) -> None:
    """Write the JSON document, the text tables and the chart, each atomically.

    Raises:
        ValueError: ``doc`` holds NaN or infinity (JSON has no such numbers).
    """
    write_text_atomic(
        out_dir / f"{stem}.json",
        json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
    )
    write_text_atomic(out_dir / f"{stem}.txt", text)
    plot(out_dir / f"{stem}.png")
