"""The attribution tests' task: a tiny CNN that decides by one half of the image.

Noise images, class 1 when a bright square sits in the left half, class 0 otherwise; half of all
images also carry a square in the right half, which the model cannot see. A faithful attribution
for class 1 must therefore point at the left half.

The model, the test images and each method's maps are built once per session (cached here), so
the attribution tests and the deletion/insertion tests of evaluation share them however pytest
groups the files.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from pixelflip.attributions import make_attribution
from pixelflip.attributions.result import AttributionResult
from pixelflip.explanation.inputs import predict_probabilities

SIZE = 16
SQUARE = 4
HALF = SIZE // 2
# Small settings keep the tests fast; the methods' defaults are for real images. A method not
# listed here runs with its defaults.
FAST_OPTIONS = {
    "grad_cam": {},
    "score_cam": {"batch_size": 64},
    "smoothgrad": {"num_samples": 8},
    "lime": {"num_samples": 150, "num_segments": 16},
}


def fast_options(name: str) -> dict:
    """The small settings the tests build method ``name`` with ({} for its defaults)."""
    return dict(FAST_OPTIONS.get(name, {}))


def make_squares(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 16, 16, 1) float32 noise images; label 1 iff a bright square is in the left half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    images = rng.uniform(0.0, 0.2, (count, SIZE, SIZE, 1)).astype(np.float32)
    for image, label in zip(images, labels):
        squares = [(0, HALF)] if label else []
        if rng.random() < 0.5:
            squares.append((HALF, SIZE))  # a distractor in the right half
        for low, high in squares:
            row = rng.integers(0, SIZE - SQUARE + 1)
            column = rng.integers(low, high - SQUARE + 1)
            image[row : row + SQUARE, column : column + SQUARE, 0] = rng.uniform(0.8, 1.0)
    return images, labels.astype(np.int64)


@functools.cache
def trained_model() -> keras.Model:
    """A CNN shaped like the project's backbone (blocks, global pooling, logits) that sees only
    the left half of its input: the right half is multiplied by zero before the first layer."""
    keras.utils.set_random_seed(0)
    left_half = np.zeros((1, SIZE, SIZE, 1), dtype=np.float32)
    left_half[:, :, :HALF] = 1.0
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    x = keras.ops.multiply(inputs, left_half)
    for index in (1, 2):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{index}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(2, name="logits")(x)
    probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)
    model = keras.Model(inputs, probabilities)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    images, labels = make_squares(1000, seed=1)
    model.fit(images, labels, epochs=8, batch_size=32, verbose=0)
    return model


@functools.cache
def positive_images() -> np.ndarray:
    """Twelve class-1 test images, each with a distractor square on the right as well."""
    model = trained_model()
    images, labels = make_squares(400, seed=2)
    predictions = predict_probabilities(model, images).argmax(axis=1)
    assert np.mean(predictions == labels) >= 0.95, "the fixture model did not learn the task"
    right_half_bright = images[:, :, HALF:, 0].max(axis=(1, 2)) > 0.5
    chosen = np.flatnonzero((labels == 1) & (predictions == 1) & right_half_bright)[:12]
    assert len(chosen) == 12
    return images[chosen]


@functools.cache
def attribution_result(name: str) -> AttributionResult:
    """Method ``name``, with its fast options, explaining class 1 on :func:`positive_images`."""
    images = positive_images()
    targets = np.ones(len(images), dtype=np.int64)
    return make_attribution(name, **fast_options(name)).explain(trained_model(), images, targets)
