"""One training run as the ``train`` and ``attention`` stages do it.

Both stages stream the prepared splits, fit with per-epoch MLflow logging, evaluate on the test
split and write the same kinds of outputs (model file, history table and figure, metrics),
atomically and mirrored to the active MLflow run. That shared path lives here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pixelflip import tracking
from pixelflip.io import atomic_path, write_json


def load_datasets(prepared_dir: Path, *, batch_size: int, random_state: int,
                  augment: Any = None) -> dict[str, Any]:
    """``{"train", "val", "test"}`` tf.data datasets; only ``train`` is shuffled and augmented.

    ``augment`` is the ``train.augment`` params section (or None for no augmentation).
    """
    from pixelflip.data.augment import augment_dataset, build_augmenter
    from pixelflip.data.loaders import make_dataset

    datasets = {split: make_dataset(prepared_dir, split, batch_size=batch_size,
                                    shuffle=split == "train", random_state=random_state)
                for split in ("train", "val", "test")}
    if augment is not None:
        augmenter = build_augmenter(horizontal_flip=augment.horizontal_flip,
                                    rotation=augment.rotation, translation=augment.translation,
                                    random_state=random_state)
        datasets["train"] = augment_dataset(datasets["train"], augmenter)
    return datasets


def fit_and_evaluate(model: Any, datasets: dict[str, Any], *, learning_rate: float, epochs: int,
                     early_stopping_patience: int, reduce_lr_factor: float,
                     reduce_lr_patience: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Compile, fit (early stopping, LR on plateau, MLflow per epoch) and test ``model``.

    Returns the per-epoch history and the metrics every training stage reports: test accuracy
    and loss, epochs run, training seconds and parameter counts.
    """
    from pixelflip.models.training import (compile_classifier, count_parameters,
                                           evaluate_classifier, train_classifier)

    compile_classifier(model, learning_rate=learning_rate)
    started = time.perf_counter()
    history = train_classifier(
        model, datasets["train"], datasets["val"], epochs=epochs,
        early_stopping_patience=early_stopping_patience, reduce_lr_factor=reduce_lr_factor,
        reduce_lr_patience=reduce_lr_patience, extra_callbacks=tracking.epoch_callbacks(),
    )
    seconds = time.perf_counter() - started
    metrics = {
        "test": evaluate_classifier(model, datasets["test"]),
        "epochs_run": len(history["loss"]),
        "training_seconds": round(seconds, 2),
        "parameters": count_parameters(model),
    }
    print(f"[{model.name}] test accuracy {metrics['test']['accuracy']:.4f} after "
          f"{metrics['epochs_run']} epochs ({seconds:.0f} s)", flush=True)
    return history, metrics


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model as ``.keras`` without ever leaving a half-written file at ``path``."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def write_history(history: dict[str, list[float]], plots_dir: Path) -> pd.DataFrame:
    """Write ``history.csv`` (one row per epoch, for ``dvc plots``) and ``history.png``."""
    from pixelflip.plots import plot_training_history, save_figure

    frame = pd.DataFrame(history)
    if "epoch" in frame:
        frame = frame[["epoch", *[column for column in frame if column != "epoch"]]]
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(plots_dir / "history.csv") as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6g")
    save_figure(plot_training_history(history), plots_dir / "history.png")
    tracking.log_artifacts(plots_dir, artifact_path="plots")
    return frame


def finish_training(model: Any, *, name: str, history: dict[str, list[float]],
                    metrics: dict[str, Any], model_path: Path, metrics_path: Path,
                    plots_dir: Path, example_images: np.ndarray) -> None:
    """Write every output of a training stage and log them to MLflow.

    ``example_images`` is a small batch (float32 NHWC in [0, 1]) stored with the MLflow model
    as its input example.
    """
    save_model(model, model_path)
    write_history(history, plots_dir)
    write_json(metrics_path, metrics)
    tracking.log_metrics(metrics)
    tracking.log_keras_model(model, name=name, input_example=example_images)
    print(f"[{name}] saved {model_path}; metrics in {metrics_path}", flush=True)
