"""Tests for pixelflip.training.classifier: compile, fit with callbacks, evaluate, seeds, timing."""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelflip.models.backbones import build_classifier
from pixelflip.training.classifier import (
    Schedule,
    Seeding,
    balanced_class_weights,
    compile_classifier,
    count_parameters,
    evaluate_classifier,
    measure_inference_ms,
    set_global_seed,
    train_classifier,
)
from pixelflip.training.epochs import EpochClock

SCHEDULE = {
    "early_stopping_patience": 5,
    "reduce_lr_factor": 0.5,
    "reduce_lr_patience": 2,
}
TRAINING_ARGUMENTS = {"schedule": Schedule(**SCHEDULE)}


def quadrant_images(count: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """12x12 noise images in which the quadrant numbered by the label (0, 1 or 2) is bright."""
    rng = np.random.default_rng(random_state)
    labels = rng.integers(0, 3, size=count)
    images = rng.uniform(0.0, 0.3, size=(count, 12, 12, 1)).astype("float32")
    for image, label in zip(images, labels):
        row, column = divmod(int(label), 2)
        image[row * 6 : (row + 1) * 6, column * 6 : (column + 1) * 6] += 0.7
    return images, labels.astype("int64")


def batches(images, labels, batch_size=16):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


@pytest.fixture(scope="module")
def quadrants():
    return quadrant_images(64, random_state=0)


def tiny_classifier(dropout_rate=0.0):
    model = build_classifier(
        (12, 12, 1), 3, conv_filters=(8, 16), dense_units=16, dropout_rate=dropout_rate
    )
    compile_classifier(model, learning_rate=1e-2)
    return model


def test_training_learns_a_separable_task(quadrants):
    set_global_seed(0)
    model = tiny_classifier()
    data = batches(*quadrants)
    before = evaluate_classifier(model, data)
    history = train_classifier(model, data, data, epochs=12, verbose=0, **TRAINING_ARGUMENTS)
    after = evaluate_classifier(model, data)
    assert set(after) == {"accuracy", "loss"}
    assert after["accuracy"] > 0.9
    assert after["loss"] < before["loss"]
    epochs_run = len(history["loss"])
    assert 1 <= epochs_run <= 12
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert len(history[key]) == epochs_run
        assert all(isinstance(value, float) for value in history[key])
    assert history["epoch"] == list(range(1, epochs_run + 1))
    assert history["learning_rate"][0] == 0.01


def test_plateau_reduces_the_rate_and_stops_early(quadrants):
    # Validation labels that are all wrong make val_loss rise as training succeeds.
    set_global_seed(0)
    model = tiny_classifier()
    images, labels = quadrants
    history = train_classifier(
        model,
        batches(images, labels),
        batches(images, (labels + 1) % 3),
        epochs=20,
        schedule=Schedule(early_stopping_patience=3, reduce_lr_factor=0.5, reduce_lr_patience=1),
        verbose=0,
    )
    assert len(history["epoch"]) < 20
    assert history["learning_rate"][-1] < history["learning_rate"][0]
    # restore_best_weights: the final model scores the best recorded validation loss.
    best = evaluate_classifier(model, batches(images, (labels + 1) % 3))["loss"]
    assert best == pytest.approx(min(history["val_loss"]), rel=1e-4)


def test_same_seed_gives_identical_weights(quadrants):
    def train_once(random_state):
        set_global_seed(random_state)
        model = tiny_classifier(dropout_rate=0.3)
        data = batches(*quadrants).shuffle(64, seed=random_state)
        train_classifier(model, data, data, epochs=2, verbose=0, **TRAINING_ARGUMENTS)
        return model.get_weights()

    first, second, other = train_once(3), train_once(3), train_once(4)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, other))


def test_count_parameters_matches_the_architecture():
    model = build_classifier((8, 8, 1), 2, conv_filters=(4,), dense_units=5)
    # conv 3*3*1*4 + BN 4*4 + conv 3*3*4*4 + BN 4*4 + dense 4*5+5 + logits 5*2+2; the
    # BatchNormalization moving mean and variance (2 * 4 per layer) are not trainable.
    assert count_parameters(model) == {"total": 249, "trainable": 233}


def test_measure_inference_ms_is_a_positive_time_per_image(quadrants):
    model = tiny_classifier()
    milliseconds = measure_inference_ms(model, quadrants[0][:10], batch_size=4, repeats=2)
    assert isinstance(milliseconds, float)
    assert milliseconds > 0.0 and math.isfinite(milliseconds)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: set_global_seed(-1), "random_state"),
        (lambda: set_global_seed(1.5), "random_state"),
        (lambda: compile_classifier(tiny_classifier(), learning_rate=0.0), "learning_rate"),
        (lambda: measure_inference_ms(tiny_classifier(), np.zeros((12, 12, 1))), "images"),
        (
            lambda: measure_inference_ms(tiny_classifier(), np.zeros((2, 12, 12, 1)), repeats=0),
            "repeats",
        ),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "override, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"reduce_lr_factor": 1.0}, "reduce_lr_factor"),
        ({"early_stopping_patience": -1}, "early_stopping_patience"),
        ({"early_stopping_patience": float("inf")}, "early_stopping_patience"),
        ({"reduce_lr_factor": float("nan")}, "reduce_lr_factor"),
        ({"epochs": float("nan")}, "epochs"),
    ],
)
def test_bad_training_arguments_raise_value_error(override, message, quadrants):
    arguments = {"epochs": 1, **SCHEDULE, **override}
    epochs = arguments.pop("epochs")
    data = batches(*quadrants)
    with pytest.raises(ValueError, match=message):
        train_classifier(tiny_classifier(), data, data, epochs=epochs, verbose=0,
                         schedule=Schedule(**arguments))


def test_uncompiled_model_is_refused(quadrants):
    model = build_classifier((12, 12, 1), 3, conv_filters=(8,), dense_units=4)
    with pytest.raises(ValueError, match="not compiled"):
        evaluate_classifier(model, batches(*quadrants))


def test_balanced_class_weights_follow_the_sklearn_formula():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    weights = balanced_class_weights(labels, 3)
    # n / (K * count_k): 12 / (3 * 6), 12 / (3 * 2), 12 / (3 * 4).
    assert weights == {0: pytest.approx(2 / 3), 1: pytest.approx(2.0), 2: pytest.approx(1.0)}
    # Each class then carries the same total weight.
    totals = [weights[k] * np.sum(labels == k) for k in range(3)]
    assert totals == pytest.approx([4.0, 4.0, 4.0])
    assert balanced_class_weights(np.array([1, 1, 0, 0]), 2) == {0: 1.0, 1: 1.0}


@pytest.mark.parametrize(
    "labels, num_classes, message",
    [
        (np.array([0, 0, 2]), 3, r"classes \[1\] have no training sample"),
        (np.array([0, 3]), 3, r"labels must lie in \[0, 3\)"),
        (np.array([0.0, 1.0]), 2, "integers"),
        (np.array([], dtype=np.int64), 2, "non-empty"),
        (np.array([0, 1]), 0, "num_classes"),
    ],
)
def test_balanced_class_weights_refuse_unusable_labels(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        balanced_class_weights(labels, num_classes)


def test_class_weights_steer_what_the_model_learns(quadrants):
    # Only class 0 carries weight: the model learns to answer 0 whatever the image.
    set_global_seed(0)
    model = tiny_classifier()
    data = batches(*quadrants)
    history = train_classifier(model, data, data, epochs=4, verbose=0,
                               class_weight={0: 1.0, 1: 0.0, 2: 0.0}, **TRAINING_ARGUMENTS)
    predictions = model.predict(quadrants[0], verbose=0).argmax(axis=1)
    assert np.mean(predictions == 0) > 0.9
    assert history["epoch"] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "override, message",
    [
        (lambda: {"class_weight": {0: 1.0, 2: 1.0}}, "one entry per class"),
        (lambda: {"class_weight": {0: 1.0, 1: -1.0, 2: 1.0}}, "finite and >= 0"),
        (lambda: {"seeding": Seeding(epoch_clock=EpochClock())}, "epoch_clock needs random_state"),
        (lambda: {"epoch_offset": -1}, "epoch_offset"),
        (lambda: {"seeding": Seeding(backup_dir="backup")}, "backup_dir needs random_state"),
        (lambda: {"seeding": Seeding(random_state=-1)}, "random_state"),
    ],
)
def test_bad_weights_or_seeding_arguments_raise_value_error(override, message, quadrants):
    # A callable, so that settings refused as they are built raise inside pytest.raises.
    data = batches(*quadrants)
    with pytest.raises(ValueError, match=message):
        train_classifier(tiny_classifier(), data, data, epochs=1, verbose=0,
                         **TRAINING_ARGUMENTS, **override())


def test_a_later_phase_numbers_its_epochs_on_and_draws_from_those_numbers(quadrants):
    class ClockReader(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                epochs_read.append(clock.epoch)

    epochs_read, clock = [], EpochClock()
    set_global_seed(0)
    data = batches(*quadrants)
    history = train_classifier(tiny_classifier(), data, data, epochs=2, epoch_offset=3,
                               seeding=Seeding(random_state=0, epoch_clock=clock),
                               extra_callbacks=[ClockReader()], verbose=0, **TRAINING_ARGUMENTS)
    assert history["epoch"] == [4, 5]
    assert epochs_read == [3, 4]
