"""One training run as the ``train`` and ``attention`` stages do it.

Both stages stream the prepared splits (shuffled and augmented per epoch from the seed), fit in
one or more phases (the attention stage first trains the new module on a frozen base), resume a
killed run from its last finished epoch, evaluate, and write the same kinds of outputs (model
file, history table and figure, metrics), atomically and mirrored to the active MLflow run. That
shared path lives here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pixelflip.stage import layout
from pixelflip.stage.files import atomic_path, read_json, write_json
from pixelflip.stage.timings import split_timings
from pixelflip.tracking.epochs import epoch_callbacks, log_epoch_history
from pixelflip.tracking.model_registry import log_keras_model
from pixelflip.tracking.outage import failed as tracking_failed
from pixelflip.tracking.runs import log_artifacts, log_metrics, log_params


@dataclass
class TrainingData:
    """What a training stage feeds the model.

    ``datasets`` maps ``train``/``val``/``test`` to tf.data batches of (float32 (B, H, W, C) in
    [0, 1], int64 (B,)); the training batches' order and augmentation follow ``epoch_clock``.
    ``example_images`` are the first test images (float32, at most 256) for timing and the
    MLflow input example.
    """

    datasets: dict[str, Any]
    epoch_clock: Any
    augmenter: Any
    class_weight: dict[int, float] | None
    num_classes: int
    example_images: np.ndarray


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one set of trainable layers.

    ``trainable`` names the layers that train (None: every layer); the others are frozen.
    """

    name: str
    epochs: int
    trainable: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TrainingJob:
    """One training stage's run: what it trains, how, and where its results go.

    ``name`` is the model's (``base`` or the attention module), ``stage`` the DVC stage (its
    backups live in ``layout.backup_dir(stage)``); ``phases`` run in order at ``learning_rate``
    under ``schedule``, every random draw a function of ``random_state`` and the epoch.
    ``settings`` (the stage's declared params) and the bytes of ``inputs`` make the fingerprint a
    backup must match to be resumed; ``labels`` (model, module, backbone, ...) go into the
    metrics beside the measurements. The model is saved to ``model_path``, its metrics to
    ``metrics_path`` and their timings (training seconds, inference milliseconds) to
    ``timings_path``, its history to ``plots_dir``, and it becomes a version of
    ``registered_model``.
    """

    name: str
    stage: str
    phases: tuple[Phase, ...]
    learning_rate: float
    schedule: Any
    random_state: int
    settings: Mapping[str, Any]
    inputs: tuple[Path, ...]
    labels: Mapping[str, Any]
    model_path: Path
    metrics_path: Path
    timings_path: Path
    plots_dir: Path
    registered_model: str


def start_training(*, random_state: int, batch_size: int, mixed_precision: bool,
                   augment: Any = None, class_weight: str | None = None
                   ) -> tuple[Any, TrainingData]:
    """The set-up both training stages share: strategy, seed, precision, device log, data.

    ``augment`` is the ``train.augment`` params section (None: no augmentation);
    ``class_weight`` is ``"balanced"`` or None. Returns ``(strategy, data)``; build and compile
    the model inside ``strategy.scope()``.
    """
    # The strategy first: a multi-worker one must exist before TensorFlow runs any op.
    from pixelflip.training.distribute import make_strategy, set_precision

    strategy, strategy_info = make_strategy()
    from pixelflip.tracking.device import describe_device
    from pixelflip.training.classifier import set_global_seed

    set_global_seed(random_state)
    precision = set_precision(mixed_precision)
    log_params({**describe_device(extra=strategy_info), "precision": precision})
    data = load_training_data(layout.PREPARED_DIR, batch_size=batch_size,
                              random_state=random_state, augment=augment,
                              class_weight=class_weight)
    return strategy, data


def schedule_of(train: Any) -> Any:
    """The learning-rate and early-stopping schedule of the ``train`` params section."""
    from pixelflip.training.classifier import Schedule

    return Schedule(early_stopping_patience=train.early_stopping_patience,
                    reduce_lr_factor=train.reduce_lr_factor,
                    reduce_lr_patience=train.reduce_lr_patience)


def train_and_save(model: Any, data: TrainingData, job: TrainingJob, *, strategy: Any) -> None:
    """Fit ``model`` (resumably), measure it, write and register it, then drop the backups.

    The backups stay when the MLflow store failed during the stage: the stage then ends with
    an error and its rerun resumes from them instead of training again.
    """
    backup_dir = layout.backup_dir(job.stage)
    history, metrics = fit_and_evaluate(
        model, data, phases=job.phases, learning_rate=job.learning_rate, strategy=strategy,
        backup_dir=backup_dir, random_state=job.random_state, schedule=job.schedule,
        fingerprint=run_fingerprint(job.settings, job.inputs))
    metrics.update(job.labels)
    finish_training(model, name=job.name, history=history, metrics=metrics,
                    model_path=job.model_path, metrics_path=job.metrics_path,
                    timings_path=job.timings_path, plots_dir=job.plots_dir,
                    example_images=data.example_images, registered_model=job.registered_model)
    if tracking_failed():
        # The stage ends with the tracking error, so DVC reruns it: from these backups, which
        # restore every finished phase, rather than by training again.
        print(f"[{job.name}] keeping the backups in {backup_dir} for the rerun, since the "
              "MLflow run is not recorded", flush=True)
    else:
        discard_backups(backup_dir)


def load_training_data(prepared_dir: Path, *, batch_size: int, random_state: int,
                       augment: Any = None, class_weight: str | None = None) -> TrainingData:
    """Datasets of the prepared splits; only ``train`` is shuffled and augmented.

    ``augment`` is the ``train.augment`` params section (None: no augmentation);
    ``class_weight`` is ``"balanced"`` or None.
    """
    from pixelflip.data.augment import augment_dataset, build_augmenter
    from pixelflip.data.loaders import load_classes, load_split, make_dataset
    from pixelflip.training.classifier import balanced_class_weights
    from pixelflip.training.epochs import EpochClock

    classes = load_classes(prepared_dir)
    clock = EpochClock()
    datasets = {split: make_dataset(prepared_dir, split, batch_size=batch_size,
                                    shuffle=split == "train", random_state=random_state,
                                    epoch_clock=clock if split == "train" else None)
                for split in ("train", "val", "test")}
    augmenter = None
    if augment is not None:
        augmenter = build_augmenter(horizontal_flip=augment.horizontal_flip,
                                    rotation=augment.rotation, translation=augment.translation,
                                    elastic_strength=augment.elastic_strength,
                                    elastic_smoothness=augment.elastic_smoothness,
                                    random_state=random_state)
        datasets["train"] = augment_dataset(datasets["train"], augmenter)
    weights = None
    if class_weight == "balanced":
        weights = balanced_class_weights(load_split(prepared_dir, "train")[1], len(classes))
    test_images, _ = load_split(prepared_dir, "test")
    return TrainingData(datasets=datasets, epoch_clock=clock, augmenter=augmenter,
                        class_weight=weights, num_classes=len(classes),
                        example_images=np.asarray(test_images[:256], np.float32) / 255.0)


def run_fingerprint(settings: Mapping[str, Any], files: Sequence[Path]) -> str:
    """What a training result depends on: its params and the bytes of its input files.

    A backup made under another fingerprint (params edited, data or base model rebuilt) belongs
    to another run and must not be resumed.
    """
    from pixelflip.data.sources import file_sha256

    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def attention_only(model: Any) -> tuple[str, ...]:
    """The layers that train while the base is frozen: the attention modules and the head."""
    from pixelflip.models.attention import attention_layer_names
    from pixelflip.models.backbones import HEAD_LAYER_NAMES

    return (*attention_layer_names(model), *(name for name in HEAD_LAYER_NAMES
                                             if any(layer.name == name for layer in model.layers)))


def fit_and_evaluate(model: Any, data: TrainingData, *, phases: Sequence[Phase],
                     learning_rate: float, strategy: Any, backup_dir: Path, fingerprint: str,
                     random_state: int, schedule: Any
                     ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Fit ``model`` phase by phase, then measure it; resumable at every finished epoch.

    ``schedule`` is a :class:`~pixelflip.training.classifier.Schedule`.
    A phase that finished before a kill is not run again: its weights and history are kept in
    ``backup_dir/<phase>.done.npz``/``.json`` until the stage ends. Returns the history of all
    epochs (numbered on across phases) and the metrics every training stage reports.
    """
    from pixelflip.training.classifier import (
        count_parameters,
        evaluate_classifier,
        measure_inference_ms,
    )

    history: dict[str, list[float]] = {}
    started = time.perf_counter()
    for phase in phases:
        if phase.epochs > 0:
            _append_history(history, _run_phase(
                model, data, phase, epoch_offset=len(history.get("epoch", [])),
                learning_rate=learning_rate, strategy=strategy,
                backup_dir=backup_dir, fingerprint=fingerprint, random_state=random_state,
                schedule=schedule))
    seconds = time.perf_counter() - started
    # Saved fully trainable, so a user who fine-tunes the file later trains every layer; the
    # model stays compiled from its last phase, whose optimizer state is saved with it.
    _set_trainable(model, None)
    # Epochs restored from a backup were logged by the killed run, not by this one.
    log_epoch_history(history)
    metrics = {
        "test": evaluate_classifier(model, data.datasets["test"]),
        "validation": evaluate_classifier(model, data.datasets["val"]),
        "epochs_run": len(history.get("epoch", [])),
        "training_seconds": round(seconds, 2),
        "parameters": count_parameters(model),
        "inference_ms_per_image": round(measure_inference_ms(model, data.example_images), 4),
    }
    print(f"[{model.name}] test accuracy {metrics['test']['accuracy']:.4f}, validation "
          f"{metrics['validation']['accuracy']:.4f} after {metrics['epochs_run']} epochs "
          f"({seconds:.0f} s)", flush=True)
    return history, metrics


def _run_phase(model: Any, data: TrainingData, phase: Phase, *, epoch_offset: int,
               learning_rate: float, strategy: Any, backup_dir: Path, fingerprint: str,
               random_state: int, schedule: Any) -> dict[str, list[float]]:
    from pixelflip.training.classifier import Seeding, compile_classifier, train_classifier

    # Compiled even when the phase is restored below: a run killed after its last phase (while
    # evaluating or logging) resumes straight to evaluation, which needs a compiled model.
    _set_trainable(model, phase.trainable)
    with strategy.scope():
        compile_classifier(model, learning_rate=learning_rate)
    done_weights = backup_dir / f"{phase.name}.done.npz"
    done_history = backup_dir / f"{phase.name}.done.json"
    if done_weights.exists() and done_history.exists():
        record = read_json(done_history)
        if record.get("fingerprint") == fingerprint:
            with np.load(done_weights) as stored:
                model.set_weights([stored[f"arr_{index}"] for index in range(len(stored.files))])
            print(f"[{model.name}] phase '{phase.name}' finished before; its weights are "
                  f"restored from {done_weights}", flush=True)
            return record["history"]
    if phase.trainable is not None:
        print(f"[{model.name}] phase '{phase.name}': {phase.epochs} epochs training only "
              f"{', '.join(phase.trainable)}", flush=True)
    seeding = Seeding(random_state, epoch_clock=data.epoch_clock,
                      seeded_layers=[data.augmenter] if data.augmenter is not None else (),
                      backup_dir=backup_dir / phase.name,
                      fingerprint=f"{fingerprint}:{phase.name}")
    history = train_classifier(
        model, data.datasets["train"], data.datasets["val"], epochs=phase.epochs,
        schedule=schedule, epoch_offset=epoch_offset, class_weight=data.class_weight,
        seeding=seeding, extra_callbacks=epoch_callbacks(epoch_offset=epoch_offset))
    backup_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(done_weights) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, *model.get_weights())
    write_json(done_history, {"fingerprint": fingerprint, "history": history})
    return history


def _set_trainable(model: Any, trainable: Sequence[str] | None) -> None:
    for layer in model.layers:
        layer.trainable = trainable is None or layer.name in trainable


def _append_history(history: dict[str, list[float]], phase: dict[str, list[float]]) -> None:
    # Each phase's epochs are already numbered on from the phases before it (epoch_offset).
    for key, values in phase.items():
        history.setdefault(key, []).extend(values)


def discard_backups(backup_dir: Path) -> None:
    """Remove a stage's backups once its outputs are written: the run is complete."""
    shutil.rmtree(backup_dir, ignore_errors=True)


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model as ``.keras`` without ever leaving a half-written file at ``path``."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def write_history(history: dict[str, list[float]], plots_dir: Path) -> pd.DataFrame:
    """Write ``history.csv`` (one row per epoch, for ``dvc plots``) and ``history.png``."""
    from pixelflip.plots.common import save_figure
    from pixelflip.plots.training import plot_training_history

    frame = pd.DataFrame(history)
    if "epoch" in frame:
        frame = frame[["epoch", *[column for column in frame if column != "epoch"]]]
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(plots_dir / "history.csv") as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6g")
    save_figure(plot_training_history(history), plots_dir / "history.png")
    log_artifacts(plots_dir, artifact_path="plots")
    return frame


def finish_training(model: Any, *, name: str, history: dict[str, list[float]],
                    metrics: dict[str, Any], model_path: Path, metrics_path: Path,
                    timings_path: Path, plots_dir: Path, example_images: np.ndarray,
                    registered_model: str) -> None:
    """Write every output of a training stage, log them to MLflow and register the model.

    ``metrics`` go to ``metrics_path`` but for their timings, which go to ``timings_path``: a
    rerun of the same training reproduces the first file exactly and only the second changes.

    ``example_images`` is a small batch (float32 NHWC in [0, 1]) stored with the MLflow model
    as its input example. The model becomes a new version of ``registered_model`` tagged with
    its module, backbone and accuracies, so the registry can point its ``best`` alias at it.
    """
    save_model(model, model_path)
    write_history(history, plots_dir)
    results, timings = split_timings(metrics)
    write_json(metrics_path, results)
    write_json(timings_path, timings)
    log_metrics(metrics)
    tags = {"module": name, "backbone": metrics["backbone"],
            "val_accuracy": metrics["validation"]["accuracy"],
            "test_accuracy": metrics["test"]["accuracy"]}
    version = log_keras_model(model, name, example_images[:2],
                                       registered_model_name=registered_model, tags=tags)
    registered = f", registered as {registered_model} version {version}" if version else ""
    print(f"[{name}] saved {model_path}; metrics in {metrics_path}{registered}", flush=True)
