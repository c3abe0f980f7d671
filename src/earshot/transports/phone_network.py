"""What the phone network adds that no endpoint can measure (no dependencies: the CLI reads it
before the server's packages are imported)."""

from __future__ import annotations

PSTN_RANGE_MS = (150.0, 700.0)
"""One-way latency PSTN carrier routing adds, low and high (ms; T. Pan, "Voice AI in
Production: Engineering the 300ms Latency Budget", in REFERENCE.md)."""
