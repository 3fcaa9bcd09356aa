"""Fixtures the attribution tests share: the left-half squares model, its class-1 test images,
every registered method's maps of them (see :mod:`support.left_half_squares`), and a tiny RGB
model."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from support.left_half_squares import attribution_result, positive_images, trained_model

from pixelflip.attributions.result import AttributionResult
from pixelflip.config.methods import ATTRIBUTIONS, method_names


@pytest.fixture(scope="session")
def squares_model() -> keras.Model:
    return trained_model()


@pytest.fixture(scope="session")
def positives(squares_model) -> np.ndarray:
    return positive_images()


@pytest.fixture(scope="session")
def results(positives) -> dict[str, AttributionResult]:
    """Every registered attribution method's maps of ``positives`` for class 1."""
    return {name: attribution_result(name) for name in method_names(ATTRIBUTIONS)}


@pytest.fixture
def rgb_model() -> keras.Model:
    """An untrained 12x12 RGB model over three classes with one feature block."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block1")(inputs)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))
