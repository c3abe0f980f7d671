"""Running an evaluation's trials: in this process, or as Ray tasks.

Both paths stream the plan (at most ``max_in_flight`` trials are held at once on Ray, one
locally), hand each finished trial to ``on_done`` as soon as it finishes (the CLI appends it to
the per-trial log), and return the trials done in plan order. Ctrl-C or SIGTERM stops the run:
no new trial starts, pending Ray tasks are cancelled, and the trials finished so far are
returned with ``interrupted=True``.

Ray: ``address=None`` starts a local Ray with ``num_cpus`` workers on this machine
(``ray.init(num_cpus=...)``); ``"auto"`` or ``"host:port"`` / ``"ray://host:10001"`` joins an
existing cluster, whose workers must have earshot installed (and see the data folder at the
same path). Ray ships ``run_trial`` by reference and the options once (``ray.put``).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import Any, TypeVar

from earshot.evals.harness.api import DoneTrial, Evaluation, RunResult, Trial, TrialResult
from earshot.evals.harness.errors import (
    HarnessError,
    Interrupted,
    MissingExtraError,
    TrialFailedError,
)

O = TypeVar("O")  # noqa: E741
P = TypeVar("P")

DEFAULT_RAY_CPUS = 2
"""Workers of a local Ray started by ``--ray`` with no address."""

RAY_EXTRA_HINT = "install the ray extra: pip install 'earshot[ray]'"


@dataclass(frozen=True, slots=True)
class RaySettings:
    """Where to run the trials on Ray.

    Attributes:
        address: ``None`` to start a local Ray; else ``"auto"`` or a cluster address.
        num_cpus: workers of a local Ray (ignored when joining a cluster).
        max_in_flight: trials submitted but not yet collected; bounds the driver's memory on
            corpora of thousands of recordings. ``None``: 4 × the cluster's CPUs.
    """

    address: str | None = None
    num_cpus: int = DEFAULT_RAY_CPUS
    max_in_flight: int | None = None


def import_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        MissingExtraError: Ray is not installed (the message names the ``ray`` extra).
    """
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            f"--ray needs Ray, which is not installed; {RAY_EXTRA_HINT}"
        ) from None
    return ray


_SIGTERM_SEEN: list[bool] = [False]
"""Set by the SIGTERM handler, so a trial that turns the interrupt into its own (a converse
run catches `KeyboardInterrupt` to write its files) is still reported as SIGTERM."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises `Interrupted` in the main thread, as Ctrl-C does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        _SIGTERM_SEEN[0] = True
        raise Interrupted("SIGTERM")

    _SIGTERM_SEEN[0] = False

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_reason(exc: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(exc, Interrupted) or _SIGTERM_SEEN[0] else "SIGINT"


class _PlanError(Exception):
    """The plan raised while being streamed (wraps the plan's own exception)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _execute(
    run_trial: Callable[[Any, Trial[Any]], TrialResult], options: Any, trial: Trial[Any]
) -> TrialResult:
    return run_trial(options, trial)


def run_trials(
    evaluation: Evaluation[O, P],
    options: O,
    *,
    on_done: Callable[[DoneTrial], None] = lambda _: None,
    ray: RaySettings | None = None,
) -> RunResult:
    """Run every trial of ``evaluation.plan(options)``.

    Args:
        on_done: called in the driver for each finished trial, in completion order.
        ray: run on Ray with these settings; ``None`` runs in this process.

    Returns:
        The trials done, sorted by index; ``interrupted`` when Ctrl-C/SIGTERM stopped it,
        ``failure`` when a trial raised (the run stops at the first failure).

    Raises:
        MissingExtraError: ``ray`` is given but Ray is not installed.
        HarnessError: Ray could not be started or reached.
        ValueError: the plan rejected the options or the data (raised while streaming it).
    """
    run = RunResult()
    done: list[DoneTrial] = []

    def finish(item: DoneTrial) -> None:
        done.append(item)
        on_done(item)

    with sigterm_as_interrupt():
        try:
            if ray is None:
                _run_local(evaluation, options, run, finish)
            else:
                _run_ray(evaluation, options, run, finish, ray)
        except KeyboardInterrupt as exc:
            run.interrupted = True
            run.stop_reason = _stop_reason(exc)
        except TrialFailedError as exc:
            run.failure = str(exc)
        except _PlanError as exc:
            if not done:
                raise exc.cause from None  # bad options or data: nothing ran
            run.failure = f"the plan stopped after {len(done)} trial(s): {exc.cause}"
        finally:
            run.done = sorted(done, key=lambda d: d.index)
    return run


def _counted(plan: Callable[[], Iterable[Trial[P]]], run: RunResult) -> Iterator[Trial[P]]:
    """The plan's trials, counted; an exception from the plan itself becomes `_PlanError`."""
    try:
        trials = iter(sized := plan())
        if isinstance(sized, Sized):
            run.total = len(sized)
    except Exception as exc:
        raise _PlanError(exc) from exc
    while True:
        try:
            trial = next(trials)
        except StopIteration:
            return
        except Exception as exc:
            raise _PlanError(exc) from exc
        run.planned += 1
        yield trial


def _run_local(
    evaluation: Evaluation[O, P],
    options: O,
    run: RunResult,
    finish: Callable[[DoneTrial], None],
) -> None:
    for trial in _counted(lambda: evaluation.plan(options), run):
        try:
            result = evaluation.run_trial(options, trial)
        except (KeyboardInterrupt, HarnessError):
            raise
        except Exception as exc:
            raise TrialFailedError(trial.trial_id, exc) from exc
        finish(DoneTrial(trial.index, trial.trial_id, result))


def start_ray(settings: RaySettings) -> ModuleType:
    """Import Ray and connect to (or start) it, once per process.

    Raises:
        MissingExtraError: Ray is not installed.
        HarnessError: the cluster cannot be reached or Ray cannot start.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    # Usage statistics would try to reach the internet; an evaluation never does.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "ERROR",
        "configure_logging": True,
    }
    try:
        if settings.address is None:
            ray.init(num_cpus=settings.num_cpus, **kwargs)
        else:
            ray.init(address=settings.address, **kwargs)
    except Exception as exc:
        where = "a local Ray" if settings.address is None else f"Ray at {settings.address}"
        raise HarnessError(
            f"cannot start {where} ({type(exc).__name__}: {exc}); check the address, "
            "or drop the address to start a local Ray"
        ) from None
    return ray


def _run_ray(
    evaluation: Evaluation[O, P],
    options: O,
    run: RunResult,
    finish: Callable[[DoneTrial], None],
    settings: RaySettings,
) -> None:
    ray = start_ray(settings)
    cpus = int(ray.cluster_resources().get("CPU", settings.num_cpus)) or 1
    max_in_flight = settings.max_in_flight or 4 * cpus
    remote = ray.remote(num_cpus=1, max_retries=0)(_execute)
    options_ref = ray.put(options)
    pending: dict[Any, Trial[P]] = {}

    def collect(num_returns: int) -> None:
        ready, _ = ray.wait(list(pending), num_returns=num_returns)
        for ref in ready:
            trial = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:
                cause = getattr(exc, "cause", None)
                raise TrialFailedError(
                    trial.trial_id, cause if isinstance(cause, BaseException) else exc
                ) from exc
            finish(DoneTrial(trial.index, trial.trial_id, result))

    try:
        for trial in _counted(lambda: evaluation.plan(options), run):
            pending[remote.remote(evaluation.run_trial, options_ref, trial)] = trial
            if len(pending) >= max_in_flight:
                collect(1)
        while pending:
            collect(1)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def shutdown_ray() -> None:
    """Disconnect from Ray if this process connected (a local Ray it started stops)."""
    if "ray" in sys.modules:
        ray = sys.modules["ray"]
        if ray.is_initialized():
            ray.shutdown()
