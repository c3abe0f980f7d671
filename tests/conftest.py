"""Test-wide setup: make the shared test servers importable from every test folder."""

import sys
from pathlib import Path

_LLM_TESTS = str(Path(__file__).parent / "llm")
if _LLM_TESTS not in sys.path:
    sys.path.insert(0, _LLM_TESTS)
