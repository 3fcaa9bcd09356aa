"""The contract every registered counterfactual method keeps, checked for each one in the registry.

The methods run on a fixed linear model whose answer is known: a 9x9 image is the class of its
brightest column band (logit = 20 x the band's mean pixel). A method registered in
:mod:`pixelflip.config.methods` is tested here without editing this file; ``FAST_OPTIONS`` only
makes the known ones quick.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from support.counterfactual_assertions import assert_rejects_bad_inputs, assert_same_counterfactuals
from support.explain_inputs import assert_rejects_malformed_inputs

from pixelflip.config.methods import COUNTERFACTUALS, constructor_settings, methods_of
from pixelflip.counterfactuals import make_counterfactual
from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.explanation.targets import ANY_OTHER

SIDE = 9
BANDS = 3
WIDTH = SIDE // BANDS
SPECS = methods_of(COUNTERFACTUALS)
# Small searches keep each method to about a second; a method not listed runs with its defaults.
FAST_OPTIONS = {
    "elastic_net": {"max_iterations": 50, "binary_search_steps": 3},
    "prototype_guided": {"autoencoder_epochs": 1},
    "growing_spheres": {"num_samples": 32, "max_layers": 20},
    "regions": {"num_segments": 9},
}


def fast_options(name: str) -> dict:
    return dict(FAST_OPTIONS.get(name, {}))


def build(name: str, **options):
    """Method ``name`` with its fast options and ``options``, fitted on band images of every
    class, as the stage fits every method on the training split (the region method draws its
    distractors from them)."""
    return make_counterfactual(name, **{**fast_options(name), **options}).fit(*REFERENCES)


def by_name(parametrized):
    return pytest.mark.parametrize("spec", parametrized, ids=[spec.name for spec in parametrized])


def fixed_model(*, constant: bool = False) -> keras.Model:
    """Softmax over 20 x the mean pixel of each column band; ``constant``: always class 0,
    whatever the image, so no counterfactual exists."""
    inputs = keras.Input(shape=(SIDE, SIDE, 1))
    dense = keras.layers.Dense(BANDS, name="logits")
    probabilities = keras.layers.Activation("softmax")(dense(keras.layers.Flatten()(inputs)))
    model = keras.Model(inputs, probabilities)
    kernel = np.zeros((SIDE, SIDE, 1, BANDS), np.float32)
    bias = np.zeros(BANDS, np.float32)
    if constant:
        bias[0] = 1.0
    else:
        for band in range(BANDS):
            kernel[:, band * WIDTH : (band + 1) * WIDTH, 0, band] = 20.0 / (SIDE * WIDTH)
    dense.set_weights([kernel.reshape(-1, BANDS), bias])
    return model


def make_bands(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 9, 9, 1) float32 noise images with one brighter band, classes in turn."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % BANDS
    images = rng.uniform(0.0, 0.2, (count, SIDE, SIDE, 1)).astype(np.float32)
    for image, label in zip(images, labels):
        image[1:-1, label * WIDTH : (label + 1) * WIDTH, 0] = rng.uniform(0.5, 0.6)
    return images, labels.astype(np.int64)


REFERENCES = make_bands(30, seed=9)


def predict(model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model(images, training=False), dtype=np.float32)


@pytest.fixture(scope="module")
def band_model() -> keras.Model:
    return fixed_model()


@pytest.fixture(scope="module")
def band_images(band_model) -> np.ndarray:
    images, labels = make_bands(6, seed=0)
    np.testing.assert_array_equal(predict(band_model, images).argmax(axis=1), labels)
    return images


@pytest.fixture(scope="module")
def untargeted(band_model, band_images):
    """``untargeted(name)``: method ``name`` (fast options) with target ANY_OTHER, run once."""

    @functools.cache
    def explain(name: str) -> CounterfactualResult:
        targets = np.full(len(band_images), ANY_OTHER)
        return build(name).explain(
            band_model, band_images, targets
        )

    return explain


@by_name(SPECS)
def test_explain_returns_a_counterfactual_result_named_after_the_method(
    spec, untargeted, band_images
):
    method = build(spec.name)
    assert method.name == spec.name
    result = untargeted(spec.name)
    assert isinstance(result, CounterfactualResult)
    assert result.method == spec.name
    count = len(band_images)
    assert len(result) == count and result.num_classes == BANDS
    for name in ("originals", "counterfactuals", "perturbations"):
        assert getattr(result, name).shape == band_images.shape
        assert getattr(result, name).dtype == np.float32
    for name in ("original_probabilities", "counterfactual_probabilities"):
        assert getattr(result, name).shape == (count, BANDS)
        assert getattr(result, name).dtype == np.float32
    for name in ("targets", "original_predictions", "counterfactual_predictions", "iterations"):
        assert getattr(result, name).shape == (count,)
        assert getattr(result, name).dtype == np.int64
    assert result.success.dtype == bool and result.seconds.dtype == np.float64
    np.testing.assert_array_equal(result.targets, ANY_OTHER)
    np.testing.assert_array_equal(result.originals, band_images)
    assert np.all(result.iterations >= 0) and np.all(result.seconds > 0)


@by_name(SPECS)
def test_counterfactuals_stay_in_the_pixel_range_and_perturbations_are_their_difference(
    spec, untargeted
):
    result = untargeted(spec.name)
    assert result.counterfactuals.min() >= 0.0 and result.counterfactuals.max() <= 1.0
    np.testing.assert_array_equal(result.perturbations, result.counterfactuals - result.originals)
    assert np.any(result.perturbations != 0.0)


@by_name(SPECS)
def test_a_custom_clip_range_is_respected(spec, band_model, band_images):
    dimmed = band_images * np.float32(0.75 / 0.6)
    method = build(spec.name, clip_max=0.8)
    result = method.explain(band_model, dimmed, np.full(len(dimmed), ANY_OTHER))
    assert result.success.any()
    assert result.counterfactuals.min() >= 0.0
    assert result.counterfactuals.max() <= np.float32(0.8)
    with pytest.raises(ValueError, match=r"\[0.0, 0.8\]"):
        method.explain(band_model, np.clip(dimmed + 0.1, 0.0, 1.0), np.full(len(dimmed), 0))


@by_name(SPECS)
def test_success_agrees_with_what_the_model_says_of_the_counterfactuals(
    spec, untargeted, band_model
):
    result = untargeted(spec.name)
    # The fixed model is easy to flip: a method that finds nothing is not searching.
    assert result.success.any()
    original = predict(band_model, result.originals)
    reached = predict(band_model, result.counterfactuals)
    np.testing.assert_allclose(result.original_probabilities, original, atol=1e-5)
    np.testing.assert_allclose(result.counterfactual_probabilities, reached, atol=1e-5)
    np.testing.assert_array_equal(result.original_predictions, original.argmax(axis=1))
    np.testing.assert_array_equal(result.counterfactual_predictions, reached.argmax(axis=1))
    # Target ANY_OTHER: success is leaving the original prediction.
    np.testing.assert_array_equal(
        result.success, result.counterfactual_predictions != result.original_predictions
    )


@by_name(SPECS)
def test_targeted_success_means_the_target_class_was_reached(spec, band_model, band_images):
    targets = (np.arange(len(band_images)) + 1) % BANDS
    method = build(spec.name)
    result = method.explain(band_model, band_images, targets)
    assert result.success.any()
    np.testing.assert_array_equal(result.targets, targets)
    np.testing.assert_array_equal(result.success, result.counterfactual_predictions == targets)
    np.testing.assert_array_equal(
        result.counterfactual_predictions, predict(band_model, result.counterfactuals).argmax(1)
    )


@by_name(SPECS)
def test_an_image_already_at_its_target_is_returned_unchanged(spec, band_model, band_images):
    # Images 0 and 4 are predicted as their target already; the others are not.
    targets = np.array([0, 0, 0, 1, 1, 1])
    method = build(spec.name)
    result = method.explain(band_model, band_images, targets)
    already = result.original_predictions == targets
    np.testing.assert_array_equal(np.flatnonzero(already), [0, 4])
    assert np.all(result.success[already])
    np.testing.assert_array_equal(result.counterfactuals[already], band_images[already])
    assert np.all(result.perturbations[already] == 0.0)
    assert np.all(result.iterations[already] == 0)
    assert np.any(result.perturbations[~already] != 0.0)


@by_name(SPECS)
def test_a_failed_search_returns_the_original(spec, band_images):
    # A model that answers class 0 for every image cannot be flipped by any change.
    method = build(spec.name)
    result = method.explain(fixed_model(constant=True), band_images, np.full(6, ANY_OTHER))
    assert not result.success.any()
    np.testing.assert_array_equal(result.counterfactuals, band_images)
    assert np.all(result.perturbations == 0.0)
    np.testing.assert_array_equal(result.counterfactual_predictions, 0)


@by_name(SPECS)
def test_same_random_state_gives_identical_counterfactuals(spec, band_model, band_images):
    targets = np.array([ANY_OTHER, 2, ANY_OTHER, 1, ANY_OTHER, 0])
    first, second = (
        build(spec.name, random_state=3).explain(
            band_model, band_images, targets
        )
        for _ in range(2)
    )
    assert_same_counterfactuals(first, second)
    np.testing.assert_array_equal(first.success, second.success)


@by_name(SPECS)
def test_bad_inputs_raise_value_error(spec, band_model, band_images):
    method = build(spec.name)
    images = band_images[:2]
    assert_rejects_malformed_inputs(method, band_model, images, [0, 1])
    assert_rejects_bad_inputs(method, band_model, images, num_classes=BANDS)


@by_name(SPECS)
def test_repr_round_trips_through_the_constructor_settings(spec, band_model, band_images):
    options = {**fast_options(spec.name), "batch_size": 5, "random_state": 4, "clip_max": 0.9}
    method = make_counterfactual(spec.name, **options)
    text = repr(method)
    for key, value in options.items():
        assert f"{key}={value!r}" in text
    rebuilt = type(method)(**constructor_settings(method))
    assert repr(rebuilt) == text
    # The settings read back are the whole configuration (with the same references fitted):
    # the copy searches the same way.
    for copy in (method, rebuilt):
        copy.fit(*REFERENCES)
    images = band_images * np.float32(0.85 / 0.6)
    targets = np.full(len(images), ANY_OTHER)
    assert_same_counterfactuals(rebuilt.explain(band_model, images, targets),
                                method.explain(band_model, images, targets))
