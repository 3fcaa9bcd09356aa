"""Grad-CAM: independent of the batch, RGB images, its layer and settings checks."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from support.left_half_squares import SIZE, fast_options

from pixelflip.attributions import make_attribution
from pixelflip.attributions.grad_cam import GradCAM


def test_maps_do_not_depend_on_the_batch(squares_model, positives, results):
    small_batches = make_attribution("grad_cam", batch_size=2).explain(
        squares_model, positives, np.ones(len(positives), dtype=np.int64)
    )
    np.testing.assert_allclose(small_batches.maps, results["grad_cam"].maps, atol=1e-5)


def test_rgb_images(rgb_model):
    images = np.random.default_rng(0).random((2, 12, 12, 3), dtype=np.float32)
    result = make_attribution("grad_cam", **fast_options("grad_cam")).explain(
        rgb_model, images, [0, 2]
    )
    assert result.maps.shape == (2, 12, 12)
    assert result.maps.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"num_samples": 3}, "num_samples"),
        ({"layer_name": 3}, "layer_name"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        make_attribution("grad_cam", **options)


def test_a_layer_that_is_missing_or_not_a_feature_map_raises_value_error(squares_model, positives):
    images = positives[:2]
    with pytest.raises(ValueError, match="not a layer"):
        GradCAM(layer_name="block9").explain(squares_model, images, [0, 1])
    with pytest.raises(ValueError, match="feature maps"):
        GradCAM(layer_name="logits").explain(squares_model, images, [0, 1])
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    no_blocks = keras.Model(inputs, squares_model(inputs))
    with pytest.raises(ValueError, match="no feature block"):
        GradCAM().explain(no_blocks, images, [0, 1])
