"""One harness for every evaluation: declare a plan, a trial and a report (see `api`)."""

from earshot.evals.harness.api import (
    DoneTrial,
    Evaluation,
    Report,
    RunResult,
    Trial,
    TrialResult,
    trial_seed,
)
from earshot.evals.harness.cli import (
    CommonSettings,
    Executed,
    add_common_arguments,
    common_settings,
    execute,
    run_cli,
)
from earshot.evals.harness.errors import HarnessError, MissingExtraError, TrialFailedError
from earshot.evals.harness.runner import RaySettings, run_trials

__all__ = [
    "CommonSettings",
    "DoneTrial",
    "Evaluation",
    "Executed",
    "HarnessError",
    "MissingExtraError",
    "RaySettings",
    "Report",
    "RunResult",
    "Trial",
    "TrialFailedError",
    "TrialResult",
    "add_common_arguments",
    "common_settings",
    "execute",
    "run_cli",
    "run_trials",
    "trial_seed",
]
