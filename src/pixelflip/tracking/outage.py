"""A tracking store that fails mid-stage switches tracking off; the stage's work goes on.

A training stage logs every epoch, its plots and its model. When the server vanishes (or the
SQLite file becomes unusable) halfway, the training must not be lost to a logging call. Every
logging helper of :mod:`pixelflip.tracking` runs its MLflow calls inside :func:`tolerated`:
the first failure prints one warning line naming the URI and ends the active run locally, so
every later helper finds no active run and does nothing. When the stage body is done,
:func:`pixelflip.tracking.runs.stage_run` raises :class:`TrackingFailedError` (one line, exit
status 2 through the stage frame): the outputs are written, the run is not fully recorded.

Outside a stage run (:func:`watching` not entered) :func:`tolerated` lets errors through, so
code that opens its own MLflow runs sees them as before.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from pixelflip.tracking.store import (
    TrackingUnavailableError,
    describe_error,
    tracking_errors,
    ways_out,
)


class TrackingFailedError(TrackingUnavailableError):
    """The store failed while the stage ran; its outputs are kept, its run is incomplete."""


@dataclass
class _Watch:
    uri: str
    from_environment: bool
    failure: str | None = None


_watch: _Watch | None = None


@contextlib.contextmanager
def watching(uri: str, *, from_environment: bool) -> Iterator[None]:
    """Tolerate failures of the store at ``uri`` inside the block (one stage's open run)."""
    global _watch
    previous, _watch = _watch, _Watch(uri, from_environment)
    try:
        yield
    finally:
        _watch = previous


def failed() -> bool:
    """Whether the store failed during the current stage run."""
    return _watch is not None and _watch.failure is not None


@contextlib.contextmanager
def tolerated(action: str) -> Iterator[None]:
    """Run MLflow calls that ``action`` names ("log metrics"); a store failure switches off.

    After the first failure nothing is retried: the active run is already ended locally.
    """
    try:
        yield
    except tracking_errors() as error:
        if _watch is None:
            raise
        if _watch.failure is None:
            switch_off(f"{action}: {describe_error(error)}")


def switch_off(reason: str) -> None:
    """Record the first failure, warn once and end the active run without the server."""
    assert _watch is not None
    _watch.failure = reason
    print(f"[tracking] warning: MLflow tracking store {_watch.uri} failed ({reason}); tracking "
          "is off for the rest of this stage, which goes on.", file=sys.stderr, flush=True)
    _end_active_run_locally()


def failure_error() -> TrackingFailedError | None:
    """The one-line error to end a stage with, when its store failed; None otherwise."""
    if not failed():
        return None
    return TrackingFailedError(
        f"MLflow tracking store {_watch.uri} failed during the stage ({_watch.failure}); the "
        "stage's outputs (and a trained model) are kept on disk but its MLflow run is not "
        "recorded: restart the tracking server and rerun dvc repro (training resumes from its "
        f"backup), or {ways_out(_watch.uri, from_environment=_watch.from_environment)}.")


def _end_active_run_locally() -> None:
    """Forget the active run and stop its system metrics monitor, contacting nobody.

    ``mlflow.end_run`` would first ask the failed store to mark the run, and it leaves the
    monitor thread running (warning every few seconds) when that request fails.
    """
    import mlflow
    from mlflow.tracking import fluent

    run = mlflow.active_run()
    if run is None:
        return
    monitor = getattr(fluent, "run_id_to_system_metrics_monitor", {}).pop(run.info.run_id, None)
    if monitor is not None:
        # Its last flush goes to the failed store too; that error is the one already reported.
        monitor_log = logging.getLogger("mlflow.system_metrics")
        level = monitor_log.level
        monitor_log.setLevel(logging.CRITICAL)
        try:
            monitor.finish()
        finally:
            monitor_log.setLevel(level)
    # The public way to pop the run stack is end_run, which also writes to the store; with the
    # store failed, the write fails fast (short HTTP retries) and is expected to.
    with contextlib.suppress(*tracking_errors()):
        mlflow.end_run(status="FAILED")
