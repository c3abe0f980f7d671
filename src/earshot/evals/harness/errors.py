"""The harness's exceptions, each carrying a one-line message that names the fix."""

from __future__ import annotations


class HarnessError(Exception):
    """A run cannot start or cannot go on; ``str(exc)`` is the one-line message."""


class MissingExtraError(HarnessError):
    """An optional dependency (e.g. Ray) is not installed; the message names the extra."""


class TrialFailedError(HarnessError):
    """A trial raised: a bug or a bad recording. The trials done before it are kept."""

    def __init__(self, trial_id: str, cause: BaseException) -> None:
        super().__init__(f"trial {trial_id} failed: {type(cause).__name__}: {cause}")
        self.trial_id = trial_id
        self.cause = cause


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM (SIGINT raises `KeyboardInterrupt` itself)."""
