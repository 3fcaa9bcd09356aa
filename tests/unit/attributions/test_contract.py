"""The contract every registered attribution method keeps, checked for each one in the registry.

The methods explain the left-half squares model (see :mod:`support.left_half_squares`), which
decides by the left half of its input only, so a faithful map is known to point there. A method
registered in :mod:`pixelflip.config.methods` is tested here without editing this file; its
entry in ``support.left_half_squares.FAST_OPTIONS`` only makes it quick.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from support.explain_inputs import assert_rejects_malformed_inputs
from support.left_half_squares import HALF, SIZE, fast_options

from pixelflip.attributions import make_attribution
from pixelflip.attributions.result import AttributionResult
from pixelflip.config.methods import ATTRIBUTIONS, constructor_settings, methods_of
from pixelflip.evaluation.deletion_insertion import deletion_insertion_auc

NAMES = [spec.name for spec in methods_of(ATTRIBUTIONS)]


@pytest.mark.parametrize("name", NAMES)
def test_explain_returns_an_attribution_result_named_after_the_method(
    squares_model, positives, name
):
    method = make_attribution(name, **fast_options(name))
    assert method.name == name
    result = method.explain(squares_model, positives[:2], np.array([1, 0]))
    assert isinstance(result, AttributionResult)
    assert result.method == name
    assert result.maps.shape == (2, SIZE, SIZE) and result.maps.dtype == np.float32
    assert result.maps.min() >= 0.0 and result.maps.max() <= 1.0
    np.testing.assert_array_equal(result.targets, [1, 0])
    assert result.targets.dtype == np.int64
    assert result.seconds.shape == (2,) and result.seconds.dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_maps_are_normalised_per_image(results, positives, name):
    result = results[name]
    assert result.method == name
    assert len(result) == len(positives)
    assert result.maps.shape == positives.shape[:3]
    assert result.maps.dtype == np.float32
    assert np.all(np.isfinite(result.maps))
    assert result.maps.min() >= 0.0 and result.maps.max() <= 1.0
    # Per-image min-max: every map spans the whole range (these images all carry evidence).
    np.testing.assert_allclose(result.maps.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(result.maps.min(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_array_equal(result.targets, np.ones(len(positives)))
    assert np.all(result.seconds > 0)


@pytest.mark.parametrize("name", NAMES)
def test_same_random_state_gives_identical_maps(squares_model, positives, name):
    images, targets = positives[:3], np.ones(3, dtype=np.int64)
    first, second = (
        make_attribution(name, random_state=3, **fast_options(name)).explain(
            squares_model, images, targets
        )
        for _ in range(2)
    )
    np.testing.assert_array_equal(first.maps, second.maps)


#: The methods that draw at random; the others make no random choice (their docstrings say so).
DRAWS_AT_RANDOM = ("smoothgrad", "lime")


@pytest.mark.parametrize("name", NAMES)
def test_random_state_drives_exactly_the_methods_that_draw_at_random(
    squares_model, positives, name
):
    images, targets = positives[:3], np.ones(3, dtype=np.int64)
    first, second = (
        make_attribution(name, random_state=seed, **fast_options(name)).explain(
            squares_model, images, targets
        )
        for seed in (1, 2)
    )
    assert np.array_equal(first.maps, second.maps) == (name not in DRAWS_AT_RANDOM)


@pytest.mark.parametrize("name", NAMES)
def test_maps_point_at_the_half_the_model_sees(results, name):
    maps = results[name].maps
    left = maps[:, :, :HALF].sum(axis=(1, 2))
    right = maps[:, :, HALF:].sum(axis=(1, 2))
    assert np.all(left > right)
    assert left.sum() > 2 * right.sum()


@pytest.mark.parametrize("name", NAMES)
def test_maps_beat_random_maps_on_deletion_and_insertion(squares_model, positives, results, name):
    targets = np.ones(len(positives), dtype=np.int64)
    random_maps = np.random.default_rng(0).random(positives.shape[:3])
    scores = deletion_insertion_auc(squares_model, positives, results[name].maps, targets)
    random = deletion_insertion_auc(squares_model, positives, random_maps, targets)
    assert scores["deletion_auc"].mean() < random["deletion_auc"].mean() - 0.2
    assert scores["insertion_auc"].mean() > random["insertion_auc"].mean() + 0.1
    assert np.mean(scores["deletion_auc"] < random["deletion_auc"]) >= 0.9
    assert np.mean(scores["insertion_auc"] > random["insertion_auc"]) >= 0.9



@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_value_error(squares_model, positives, name):
    method = make_attribution(name, **fast_options(name))
    images = positives[:2]
    with pytest.raises(ValueError, match="model expects"):
        method.explain(squares_model, np.zeros((2, SIZE - 2, SIZE, 1), np.float32), [1, 1])
    assert_rejects_malformed_inputs(method, squares_model, images, [1, 1])
    with pytest.raises(ValueError, match="-1"):
        method.explain(squares_model, images, [-1, 1])


@pytest.mark.parametrize("name", NAMES)
def test_repr_round_trips_through_the_constructor_settings(squares_model, positives, name):
    options = {**fast_options(name), "batch_size": 5, "random_state": 4}
    method = make_attribution(name, **options)
    text = repr(method)
    for key, value in options.items():
        assert f"{key}={value!r}" in text
    rebuilt = type(method)(**constructor_settings(method))
    assert repr(rebuilt) == text
    assert rebuilt.name == method.name == name
    # The settings read back are the whole configuration: the copy explains the same way.
    images, targets = positives[:2], np.ones(2, dtype=np.int64)
    np.testing.assert_array_equal(rebuilt.explain(squares_model, images, targets).maps,
                                  method.explain(squares_model, images, targets).maps)
