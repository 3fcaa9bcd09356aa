"""The frame every attribution method shares: explaining the prediction when no target is given,
the score model, per-image normalisation, the factory and the input checks."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from support.left_half_squares import SIZE

from pixelflip.attributions import make_attribution
from pixelflip.attributions.grad_cam import GradCAM
from pixelflip.attributions.method import normalize_maps, score_model
from pixelflip.attributions.smoothgrad import SmoothGrad
from pixelflip.explanation.inputs import predict_probabilities


def test_missing_targets_explain_the_prediction(squares_model, positives):
    result = GradCAM().explain(squares_model, positives[:4])
    np.testing.assert_array_equal(result.targets, [1, 1, 1, 1])


def test_score_model_falls_back_to_log_probabilities(squares_model, positives):
    # Wrapping hides the inner "logits" layer.
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    wrapped = keras.Model(inputs, squares_model(inputs))
    scores = np.asarray(score_model(wrapped)(positives[:4]))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.softmax(scores)),
        predict_probabilities(squares_model, positives[:4]),
        atol=1e-5,
    )
    result = SmoothGrad(num_samples=2).explain(wrapped, positives[:2], [1, 1])
    assert result.maps.max() == pytest.approx(1.0)


def test_normalize_maps_sends_constant_maps_to_zero():
    maps = np.stack([np.full((3, 3), 7.0), np.arange(9.0).reshape(3, 3)])
    normalised = normalize_maps(maps)
    np.testing.assert_array_equal(normalised[0], 0.0)
    np.testing.assert_allclose(normalised[1], np.arange(9.0).reshape(3, 3) / 8.0)


def test_an_unknown_method_name_raises_value_error():
    with pytest.raises(ValueError, match="unknown"):
        make_attribution("occlusion")


def test_bad_inputs_raise_value_error(squares_model, positives):
    images = positives[:2]
    with pytest.raises(ValueError, match="-1"):
        GradCAM().explain(squares_model, images, [-1, 1])
    with pytest.raises(ValueError, match="targets contains"):
        GradCAM().explain(squares_model, images, [0, 2])
    with pytest.raises(ValueError, match="dtype"):
        GradCAM().explain(squares_model, (images * 255).astype(np.uint8), [0, 1])
