"""Compiling, training, evaluating and timing the classifiers."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from pixelflip.config.checks import check_integer
from pixelflip.training.distribute import task_backup_dir
from pixelflip.training.epochs import EpochClock
from pixelflip.training.resume import EpochSeeding, ResumableBackup


def set_global_seed(random_state: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow ops deterministic.

    Seeding alone fixes the initial weights, dropout masks and shuffling, but several TensorFlow
    kernels (reductions, some convolution gradients) may still sum in a thread-dependent order;
    op determinism removes that, so the same params on the same machine give the same metrics,
    which is what lets DVC and MLflow compare runs. It is process-wide and cannot be turned off.
    """
    keras.utils.set_random_seed(check_integer("random_state", random_state, minimum=0))
    tf.config.experimental.enable_op_determinism()


def compile_classifier(model: keras.Model, *, learning_rate: float) -> None:
    """Compile ``model`` (softmax outputs, integer labels) with Adam and report accuracy.

    Under mixed precision the optimizer is wrapped in ``keras.optimizers.LossScaleOptimizer``
    when any layer computes in float16 (bfloat16 has float32's exponent range and needs no
    scaling), and the model's outputs must be float32: softmax probabilities in float16 or
    bfloat16 lose the precision that the loss and the counterfactual search rely on.

    Raises:
        ValueError: ``learning_rate`` <= 0, or outputs that are not float32.
    """
    if not float(learning_rate) > 0.0:
        raise ValueError(f"learning_rate={learning_rate!r} is invalid; expected a value > 0.")
    output_dtypes = {str(output.dtype) for output in getattr(model, "outputs", None) or []}
    if output_dtypes - {"float32"}:
        raise ValueError(
            f"Model {model.name!r} outputs {sorted(output_dtypes)}; under mixed precision its "
            f"last layer must compute in float32 (build it with dtype='float32')."
        )
    optimizer = keras.optimizers.Adam(learning_rate=float(learning_rate))
    if any(layer.dtype_policy.compute_dtype == "float16" for layer in model._flatten_layers()):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights ``n / (num_classes * count_k)`` per class (scikit-learn's "balanced").

    Every class then contributes the same total weight to the training loss, whatever its
    share of the ``n`` labels.

    Args:
        labels: integer class indices, shape (n,), each in [0, num_classes).
        num_classes: K >= 1.

    Returns:
        ``{class index: weight}`` for every class 0..K-1, as ``model.fit(class_weight=...)``
        expects.

    Raises:
        ValueError: labels that are not integers in range, or a class without any label
            (its weight would be infinite).
    """
    labels = np.asarray(labels)
    if int(num_classes) < 1:
        raise ValueError(f"num_classes={num_classes!r} is invalid; expected an integer >= 1.")
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a non-empty 1-D array of integers, got {labels.dtype} "
            f"with shape {labels.shape}."
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values from {labels.min()} to "
            f"{labels.max()}."
        )
    counts = np.bincount(labels, minlength=int(num_classes))
    missing = np.flatnonzero(counts == 0).tolist()
    if missing:
        raise ValueError(
            f"classes {missing} have no training sample, so balanced class weights are "
            f"undefined; add samples of them or set train.class_weight to null."
        )
    return {k: float(labels.size / (num_classes * counts[k])) for k in range(int(num_classes))}


class _EpochRecorder(keras.callbacks.Callback):
    """Per-epoch logs plus the learning rate each epoch trained with (read before any
    reduction); its state is what ``ResumableBackup`` saves, so restored epochs stay in it."""

    def on_train_begin(self, logs=None):
        self.rows: list[dict[str, float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        # Going through the float32 text keeps 0.001 as 0.001 rather than 0.0010000000474974513.
        self._rate = float(str(np.float32(rate)))

    def on_epoch_end(self, epoch, logs=None):
        # ReduceLROnPlateau adds the rate *after* its reduction to the logs; ours is the one
        # the epoch trained with.
        row = {key: float(value) for key, value in (logs or {}).items() if key != "learning_rate"}
        self.rows.append({**row, "learning_rate": self._rate, "epoch": int(epoch) + 1})

    def get_state(self) -> dict:
        return {"rows": self.rows}

    def set_state(self, state: dict) -> None:
        self.rows = [dict(row) for row in state["rows"]]

    def history(self) -> dict[str, list[float]]:
        keys = list(self.rows[0]) if self.rows else []
        return {key: [row[key] for row in self.rows] for key in keys}


def _require_compiled(model: keras.Model) -> None:
    if not getattr(model, "compiled", False):
        raise ValueError(
            f"Model {model.name!r} is not compiled; call compile_classifier(model, ...) first."
        )


def _check_class_weight(class_weight: Mapping[int, float]) -> dict[int, float]:
    keys = sorted(class_weight)
    if keys != list(range(len(keys))):
        raise ValueError(
            f"class_weight must have one entry per class 0..K-1, got keys {keys}; "
            f"balanced_class_weights(labels, num_classes) builds one."
        )
    weights = {int(k): float(class_weight[k]) for k in keys}
    if not all(np.isfinite(w) and w >= 0.0 for w in weights.values()):
        raise ValueError(f"class_weight values must be finite and >= 0, got {weights}.")
    return weights


def _shard_by_data(dataset: tf.data.Dataset, model: keras.Model) -> tf.data.Dataset:
    """Shard batches (not files) across workers: the splits are memory-mapped arrays, not files."""
    if not isinstance(getattr(model, "distribute_strategy", None),
                      tf.distribute.MultiWorkerMirroredStrategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _check_count(argument: str, value, *, minimum: int) -> None:
    # NaN and infinity are refused here rather than by int(), whose error names no argument.
    if not math.isfinite(float(value)) or int(value) < minimum:
        raise ValueError(f"{argument}={value!r} is invalid; expected an integer >= {minimum}.")


@dataclass(frozen=True)
class Schedule:
    """When training lowers its learning rate and when it stops, both judged on ``val_loss``.

    Attributes:
        early_stopping_patience: epochs (an integer >= 0) without a ``val_loss`` improvement
            before training stops; the best weights are then restored.
        reduce_lr_factor: in (0, 1), the factor applied to the learning rate after
            ``reduce_lr_patience`` epochs without improvement.
        reduce_lr_patience: epochs, an integer >= 0.

    Raises:
        ValueError: a field out of its range.
    """

    early_stopping_patience: int
    reduce_lr_factor: float
    reduce_lr_patience: int

    def __post_init__(self) -> None:
        for field in ("early_stopping_patience", "reduce_lr_patience"):
            _check_count(field, getattr(self, field), minimum=0)
        if not 0.0 < float(self.reduce_lr_factor) < 1.0:
            raise ValueError(
                f"reduce_lr_factor={self.reduce_lr_factor!r} is invalid; expected a value in "
                f"(0, 1)."
            )


@dataclass(frozen=True)
class Seeding:
    """What makes training repeatable epoch by epoch, and resumable after a kill.

    Attributes:
        random_state: an integer >= 0, or None (the default) for none of this: epochs then
            draw from the global generators and nothing else may be set. With it, every random
            draw of epoch ``e`` depends on ``(random_state, e)`` only
            (:class:`~pixelflip.training.resume.EpochSeeding`): the seeds of the model's dropout
            and of ``seeded_layers`` are reset each epoch and ``epoch_clock`` is advanced.
        epoch_clock: the clock the training dataset reads its shuffle order from, or None.
        seeded_layers: random layers outside the model, e.g. the augmenter (stored as a tuple).
        backup_dir: back up the training state after every epoch and resume from it when a
            killed run is started again (:class:`~pixelflip.training.resume.ResumableBackup`);
            deleted when training ends. None makes no backup.
        fingerprint: what the result depends on (params, data digest); a backup under another
            one is discarded.

    Raises:
        ValueError: ``random_state`` that is not an integer >= 0, or any other field set
            without it (the epochs' draws, and so a resumed run, could not be repeated).
    """

    random_state: int | None = None
    epoch_clock: EpochClock | None = None
    seeded_layers: Sequence[keras.layers.Layer] = ()
    backup_dir: str | os.PathLike | None = None
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.random_state is None:
            for field in ("epoch_clock", "seeded_layers", "backup_dir"):
                value = getattr(self, field)
                if value is not None and value != ():
                    raise ValueError(f"{field} needs random_state: without it the epochs' "
                                     f"random draws cannot be repeated.")
        else:
            check_integer("random_state", self.random_state, minimum=0)
        # A tuple keeps the settings immutable whatever sequence the caller built.
        object.__setattr__(self, "seeded_layers", tuple(self.seeded_layers))


def train_classifier(
    model: keras.Model,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    *,
    epochs: int,
    schedule: Schedule,
    epoch_offset: int = 0,
    class_weight: Mapping[int, float] | None = None,
    seeding: Seeding = Seeding(),
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 2,
) -> dict[str, list[float]]:
    """Fit a compiled ``model`` with learning-rate reduction and early stopping on ``val_loss``.

    Parameters
    ----------
    model : keras.Model
        Compiled with :func:`compile_classifier` (inside ``strategy.scope()`` when distributed).
    train_data, validation_data : tf.data.Dataset
        Batches of (float32 images (B, H, W, C) in [0, 1], int labels (B,)).
    epochs : int
        Maximum number of epochs (>= 1).
    schedule : Schedule
        Early stopping and learning-rate reduction (patiences >= 0, factor in (0, 1)).
    epoch_offset : int
        Epochs trained before this call by earlier phases (>= 0): this call's epochs are numbered
        ``epoch_offset + 1 .. epoch_offset + epochs`` and draw their randomness from those
        numbers, so a second phase does not replay the batches and augmentations of the first.
    class_weight : dict of int to float, optional
        Loss weight per class 0..K-1 (see :func:`balanced_class_weights`); None weighs all alike.
    seeding : Seeding
        Per-epoch seeds, the dataset's epoch clock and the resumable backup; the default
        ``Seeding()`` seeds nothing and backs nothing up.
    extra_callbacks : sequence of keras.callbacks.Callback
        Run after the built-in ones (for example MLflow logging); their state is not backed up.
    verbose : int
        Passed to ``model.fit``; 2 prints one line per epoch.

    Returns
    -------
    dict of str to list
        ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``learning_rate`` (the rate
        each epoch trained with) and ``epoch`` (1-based, continuing from ``epoch_offset``), one
        entry per epoch of this call, epochs restored from a backup included.

    Raises
    ------
    ValueError
        An argument out of range or an uncompiled model.
    """
    _require_compiled(model)
    _check_count("epochs", epochs, minimum=1)
    _check_count("epoch_offset", epoch_offset, minimum=0)
    if class_weight is not None:
        class_weight = _check_class_weight(class_weight)
    recorder = _EpochRecorder()
    model.fit(
        _shard_by_data(train_data, model),
        validation_data=_shard_by_data(validation_data, model),
        initial_epoch=int(epoch_offset),
        epochs=int(epoch_offset) + int(epochs),
        callbacks=_training_callbacks(model, recorder, schedule, seeding, extra_callbacks),
        class_weight=class_weight,
        # Shuffling belongs to the tf.data pipeline (seeded there); fit cannot shuffle a Dataset.
        shuffle=False,
        verbose=verbose,
    )
    return recorder.history()


def _training_callbacks(
    model: keras.Model,
    recorder: _EpochRecorder,
    schedule: Schedule,
    seeding: Seeding,
    extra_callbacks: Sequence[keras.callbacks.Callback],
) -> list[keras.callbacks.Callback]:
    """The callbacks of one ``fit``, in the order they must run."""
    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=float(schedule.reduce_lr_factor),
        patience=int(schedule.reduce_lr_patience),
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=int(schedule.early_stopping_patience),
        restore_best_weights=True,
    )
    callbacks = [recorder, reduce_lr, early_stopping, *extra_callbacks]
    if seeding.random_state is not None:
        callbacks.insert(
            0, EpochSeeding(seeding.random_state, seeding.epoch_clock, seeding.seeded_layers)
        )
    if seeding.backup_dir is not None:
        # Last, so it restores the others after their on_train_begin reset them and saves them
        # after their on_epoch_end updated them.
        callbacks.append(ResumableBackup(
            task_backup_dir(seeding.backup_dir), fingerprint=seeding.fingerprint,
            name=model.name, stateful_callbacks=[recorder, reduce_lr, early_stopping],
        ))
    return callbacks


def evaluate_classifier(model: keras.Model, data: tf.data.Dataset) -> dict[str, float]:
    """Accuracy and mean loss of a compiled ``model`` on batches of (images, labels)."""
    _require_compiled(model)
    results = model.evaluate(data, return_dict=True, verbose=0)
    return {"accuracy": float(results["accuracy"]), "loss": float(results["loss"])}


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Total and trainable parameter counts (BatchNormalization statistics are non-trainable)."""
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    return {"total": int(model.count_params()), "trainable": trainable}


def measure_inference_ms(
    model: keras.Model, images: np.ndarray, *, batch_size: int = 64, repeats: int = 3
) -> float:
    """Mean wall-clock milliseconds per image of ``model.predict`` on ``images`` (N, H, W, C).

    One untimed warm-up pass runs first so that graph tracing is not counted.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"images has shape {images.shape}; expected a non-empty (N, H, W, C) array."
        )
    if int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; expected an integer >= 1.")
    if int(repeats) < 1:
        raise ValueError(f"repeats={repeats!r} is invalid; expected an integer >= 1.")
    model.predict(images, batch_size=int(batch_size), verbose=0)
    start = time.perf_counter()
    for _ in range(int(repeats)):
        model.predict(images, batch_size=int(batch_size), verbose=0)
    elapsed = time.perf_counter() - start
    return 1000.0 * elapsed / (int(repeats) * images.shape[0])
