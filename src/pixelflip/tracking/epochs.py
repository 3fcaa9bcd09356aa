"""Per-epoch training metrics in MLflow: one point per epoch, epochs restored from a backup too.

Training stages log every epoch of every Keras metric at ``step`` = the 1-based epoch number,
numbered on across training phases and across a resume, so a run killed and resumed still shows
one complete curve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pixelflip.tracking.outage import tolerated
from pixelflip.tracking.runs import log_metrics


class EpochMetricsLog:
    """Log every epoch's Keras metrics to the active MLflow run, epochs restored from a backup too.

    Each epoch becomes one point (``step`` = the 1-based epoch number, as in the ``epoch``
    column of the training history) of every metric in Keras' epoch logs (``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``) and of ``learning_rate``: the rate the epoch
    trained with, read from the optimizer when the epoch begins, as the history records it.

    A run killed and resumed from a backup trains in a new MLflow run; ``restored_history``
    (the history saved with the backup: ``epoch``, 1-based, plus one list per metric) is logged
    into it when training starts, so the resumed run's metrics cover every epoch. Restored
    epochs that training runs again (numbered at or after the first epoch it runs) are left
    out, so no step is logged twice.

    Raises
    ------
    ValueError
        If ``restored_history`` has no ``epoch`` list or a list of another length.
    """

    def __init__(self, restored_history: Mapping[str, list[float]] | None = None,
                 epoch_offset: int = 0):
        self._pending = _history_rows(restored_history) if restored_history else []
        self._learning_rate: float | None = None
        # A later phase of a multi-phase training (frozen, then unfrozen) numbers on.
        self._offset = int(epoch_offset)

    def begin_epoch(self, epoch_index: int, learning_rate: float | None = None) -> None:
        """Called before epoch ``epoch_index`` (0-based, as Keras counts) trains."""
        self._log_restored(before=self._offset + epoch_index + 1)
        self._learning_rate = learning_rate

    def end_epoch(self, epoch_index: int, logs: Mapping[str, Any] | None) -> None:
        """Log the epoch's ``logs`` (as Keras passes them) at step ``epoch_index + 1``."""
        metrics = dict(logs or {})
        if self._learning_rate is not None:
            # Not the rate a callback put in the logs, which may already be the reduced one.
            metrics["learning_rate"] = self._learning_rate
        log_metrics(metrics, step=self._offset + epoch_index + 1)

    def end_training(self) -> None:
        """Log restored epochs still pending (a resumed fit that had no epoch left to run)."""
        self._log_restored(before=None)

    def _log_restored(self, before: int | None) -> None:
        for epoch, metrics in self._pending:
            if before is None or epoch < before:
                log_metrics(metrics, step=epoch)
        self._pending = []


def _history_rows(history: Mapping[str, list[float]]) -> list[tuple[int, dict[str, Any]]]:
    """``{"epoch": [1, 2], "loss": [.5, .4]}`` becomes ``[(1, {"loss": .5}), (2, {"loss": .4})]``."""
    epochs = history.get("epoch")
    if epochs is None:
        raise ValueError(f"The history has no 'epoch' list (keys: {sorted(history)}); pass a "
                         "training history, which numbers its epochs from 1.")
    for key, values in history.items():
        if len(values) != len(epochs):
            raise ValueError(f"history['{key}'] has {len(values)} entries but 'epoch' "
                             f"has {len(epochs)}; every list needs one entry per epoch.")
    return [(int(epoch), {key: values[row] for key, values in history.items() if key != "epoch"})
            for row, epoch in enumerate(epochs)]


def epoch_callbacks(restored_history: Mapping[str, list[float]] | None = None,
                    epoch_offset: int = 0) -> list[Any]:
    """Keras callbacks that log every epoch to the active run (see :class:`EpochMetricsLog`).

    ``epoch_offset`` is the number of epochs earlier training phases ran: epoch ``e`` of this
    fit is logged at step ``epoch_offset + e + 1``.

    Returns an empty list when no run is active. ``restored_history`` is the history of the
    epochs a resumed run restored from its backup, or None for a fresh run. Where the backup
    is restored inside ``fit`` (``train_classifier(seeding=Seeding(backup_dir=...))``), nobody
    knows it before; call :func:`log_epoch_history` with the history ``fit`` returns instead.
    """
    import mlflow

    if mlflow.active_run() is None:
        return []
    import keras

    epoch_log = EpochMetricsLog(restored_history, epoch_offset)
    callback = keras.callbacks.LambdaCallback()
    # LambdaCallback's hooks do not see the model; the closure reaches it through the callback.
    callback.on_epoch_begin = lambda epoch, logs=None: epoch_log.begin_epoch(
        epoch, _learning_rate(callback.model))
    callback.on_epoch_end = lambda epoch, logs=None: epoch_log.end_epoch(epoch, logs)
    callback.on_train_end = lambda logs=None: epoch_log.end_training()
    return [callback]


def _learning_rate(model: Any) -> float | None:
    import keras
    import numpy as np

    optimizer = getattr(model, "optimizer", None)
    try:
        rate = keras.ops.convert_to_numpy(optimizer.learning_rate)
        # Through the float32 text, as the history does: 0.001 rather than 0.0010000000474974513.
        return float(str(np.float32(rate)))
    except (AttributeError, TypeError, ValueError):
        # A schedule-driven or absent optimizer: the epoch logs are all there is.
        return None


def log_epoch_history(history: Mapping[str, list[float]]) -> list[int]:
    """Log the epochs of a whole training ``history`` that the active run has no point for.

    ``history`` is one list per metric plus ``epoch`` (1-based), as ``train_classifier``
    returns it, epochs restored from a backup included. Calling this after a fit logged with
    :func:`epoch_callbacks` adds exactly the restored epochs (step = epoch number), so the
    resumed run's metrics cover all of them; calling it again adds nothing.

    Returns the epoch numbers it logged (none without an active run).

    Raises
    ------
    ValueError
        If ``history`` has no ``epoch`` list or a list of another length.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    rows = _history_rows(history)
    run = mlflow.active_run()
    if run is None:
        return []
    client = MlflowClient()
    logged = None
    with tolerated("read the metric history"):
        logged = {point.step for key in history if key != "epoch"
                  for point in client.get_metric_history(run.info.run_id, key)}
    if logged is None:  # the store failed; tracking is off now
        return []
    missing = [(epoch, metrics) for epoch, metrics in rows if epoch not in logged]
    for epoch, metrics in missing:
        log_metrics(metrics, step=epoch)
    return [epoch for epoch, _ in missing]
