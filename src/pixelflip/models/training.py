"""Compiling, training, evaluating and timing the classifiers."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def set_global_seed(random_state: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow ops deterministic.

    Seeding alone fixes the initial weights, dropout masks and shuffling, but several TensorFlow
    kernels (reductions, some convolution gradients) may still sum in a thread-dependent order;
    op determinism removes that, so the same params on the same machine give the same metrics,
    which is what lets DVC and MLflow compare runs. It is process-wide and cannot be turned off.
    """
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise ValueError(f"random_state={random_state!r} is invalid; expected an integer >= 0.")
    if random_state < 0:
        raise ValueError(f"random_state={random_state!r} is invalid; expected an integer >= 0.")
    keras.utils.set_random_seed(int(random_state))
    tf.config.experimental.enable_op_determinism()


def compile_classifier(model: keras.Model, *, learning_rate: float) -> None:
    """Compile ``model`` (softmax outputs, integer labels) with Adam and report accuracy."""
    if not float(learning_rate) > 0.0:
        raise ValueError(f"learning_rate={learning_rate!r} is invalid; expected a value > 0.")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


class _LearningRateRecorder(keras.callbacks.Callback):
    """Records the learning rate each epoch was trained with (read before any reduction)."""

    def on_train_begin(self, logs=None):
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        # Going through the float32 text keeps 0.001 as 0.001 rather than 0.0010000000474974513.
        self.rates.append(float(str(np.float32(rate))))


def _require_compiled(model: keras.Model) -> None:
    if not getattr(model, "compiled", False):
        raise ValueError(
            f"Model {model.name!r} is not compiled; call compile_classifier(model, ...) first."
        )


def train_classifier(
    model: keras.Model,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    *,
    epochs: int,
    early_stopping_patience: int,
    reduce_lr_factor: float,
    reduce_lr_patience: int,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 2,
) -> dict[str, list[float]]:
    """Fit a compiled ``model`` with learning-rate reduction and early stopping on ``val_loss``.

    Parameters
    ----------
    model : keras.Model
        Compiled with :func:`compile_classifier`.
    train_data, validation_data : tf.data.Dataset
        Batches of (float32 images (B, H, W, C) in [0, 1], int labels (B,)).
    epochs : int
        Maximum number of epochs (>= 1).
    early_stopping_patience : int
        Epochs without a ``val_loss`` improvement before stopping; the best weights are restored.
    reduce_lr_factor : float in (0, 1)
        Factor applied to the learning rate after ``reduce_lr_patience`` epochs without improvement.
    reduce_lr_patience : int
    extra_callbacks : sequence of keras.callbacks.Callback
        Appended after the built-in ones (for example MLflow logging).
    verbose : int
        Passed to ``model.fit``; 2 prints one line per epoch.

    Returns
    -------
    dict of str to list
        ``model.fit`` history (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``) plus
        ``learning_rate`` (the rate each epoch trained with) and ``epoch`` (1-based), one entry
        per epoch that ran.
    """
    _require_compiled(model)
    if int(epochs) < 1:
        raise ValueError(f"epochs={epochs!r} is invalid; expected an integer >= 1.")
    for argument, value in (
        ("early_stopping_patience", early_stopping_patience),
        ("reduce_lr_patience", reduce_lr_patience),
    ):
        if int(value) < 0:
            raise ValueError(f"{argument}={value!r} is invalid; expected an integer >= 0.")
    if not 0.0 < float(reduce_lr_factor) < 1.0:
        raise ValueError(
            f"reduce_lr_factor={reduce_lr_factor!r} is invalid; expected a value in (0, 1)."
        )

    recorder = _LearningRateRecorder()
    callbacks = [
        recorder,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=float(reduce_lr_factor), patience=int(reduce_lr_patience)
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=int(early_stopping_patience), restore_best_weights=True
        ),
        *extra_callbacks,
    ]
    fit_history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=int(epochs),
        callbacks=callbacks,
        # Shuffling belongs to the tf.data pipeline (seeded there); fit cannot shuffle a Dataset.
        shuffle=False,
        verbose=verbose,
    )
    history = {
        key: [float(value) for value in values] for key, values in fit_history.history.items()
    }
    history["learning_rate"] = list(recorder.rates)
    history["epoch"] = list(range(1, len(recorder.rates) + 1))
    return history


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


def load_classifier(path) -> keras.Model:
    """Load a ``.keras`` classifier saved by the pipeline, attention layers included.

    The attention layers are registered when their module is imported; a stage that only loads
    models would otherwise fail with "Could not locate class 'SqueezeExcitation'".
    """
    from pixelflip.models import attention  # noqa: F401

    return keras.saving.load_model(path, safe_mode=True)
