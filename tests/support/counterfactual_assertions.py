"""Assertions every counterfactual method's tests make about a :class:`CounterfactualResult`.

Shared by the tests of the gradient (elastic-net) and black-box (Growing Spheres) searches, so
that both methods are held to the same contract: what a success means, what a targeted search
reaches, what a failed search returns, and what the same seed repeats.
"""

from __future__ import annotations

import numpy as np
import pytest


def assert_flips_predictions(result, originals: np.ndarray, *, method: str, min_success: float):
    """``result`` explains ``originals`` with ``method``, flips at least ``min_success`` of the
    predictions, and its arrays agree with each other."""
    assert result.method == method
    assert len(result) == len(originals)
    assert result.success.mean() >= min_success
    flipped = result.success
    assert np.all(
        result.counterfactual_predictions[flipped] != result.original_predictions[flipped]
    )
    np.testing.assert_array_equal(result.originals, originals)
    np.testing.assert_allclose(
        result.perturbations, result.counterfactuals - result.originals, atol=1e-7
    )


def assert_reaches_class(result, target_class: int, *, min_success: float):
    """A search for ``target_class`` reached it on at least ``min_success`` of the images not
    already predicted as it, every success is that class, and those already predicted as it are
    their own counterfactual, found for free.

    The images must include some already predicted as ``target_class`` and some not.
    """
    already = result.original_predictions == target_class
    assert already.any() and (~already).any()
    assert result.success[~already].mean() >= min_success
    assert np.all(result.counterfactual_predictions[result.success] == target_class)
    assert np.all(result.success[already])
    assert np.all(result.perturbations[already] == 0.0)
    assert np.all(result.iterations[already] == 0)


def assert_failed_search_returns_originals(result, *, iterations: int):
    """No image succeeded, each counterfactual is its original, and each search ran
    ``iterations`` iterations."""
    assert not result.success.any()
    np.testing.assert_array_equal(result.counterfactuals, result.originals)
    assert np.all(result.iterations == iterations)


def assert_same_counterfactuals(first, second):
    """Two runs gave identical counterfactuals, iteration counts and probabilities."""
    np.testing.assert_array_equal(first.counterfactuals, second.counterfactuals)
    np.testing.assert_array_equal(first.iterations, second.iterations)
    np.testing.assert_array_equal(
        first.counterfactual_probabilities, second.counterfactual_probabilities
    )


def assert_rejects_bad_inputs(engine, model, images: np.ndarray, *, num_classes: int):
    """``engine.explain`` raises ValueError for pixels outside [0, 1], a target class the model
    does not have, and images of a size the model does not take; ``images`` holds two images."""
    targets = [0, 1]
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        engine.explain(model, images * 2.0, targets)
    with pytest.raises(ValueError, match="targets contains"):
        engine.explain(model, images, [0, num_classes])
    wrong_size = np.zeros((2, 10, 10, images.shape[-1]), np.float32)
    with pytest.raises(ValueError, match="model expects"):
        engine.explain(model, wrong_size, targets)
