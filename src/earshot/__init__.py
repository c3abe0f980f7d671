"""earshot: a streaming voice-agent engine built around the latency budget."""

__version__ = "0.1.0"
