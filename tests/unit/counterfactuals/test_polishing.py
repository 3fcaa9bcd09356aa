"""Polishing on a small CNN trained on real MNIST digits: it resets changes the new prediction
does not need, exactly, and never makes a counterfactual invalid or larger."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from support.trained_digits import trained_digit_model

from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual, logit_function
from pixelflip.counterfactuals.polishing import polish_counterfactuals
from pixelflip.explanation.targets import ANY_OTHER

NUM_DIGITS = 24
CONFIDENCE = 0.2


@pytest.fixture(scope="module")
def searched():
    """Unpolished elastic-net counterfactuals of 24 held-out digits, towards any other class
    (first half) and towards the class after the true one (second half)."""
    model, held = trained_digit_model()
    images = held.images[:NUM_DIGITS]
    targets = np.full(NUM_DIGITS, ANY_OTHER)
    targets[NUM_DIGITS // 2:] = (held.predictions[NUM_DIGITS // 2:NUM_DIGITS] + 1) % 10
    engine = ElasticNetCounterfactual(confidence=CONFIDENCE, polish=False)
    result = engine.explain(model, images, targets)
    return model, result


def test_polishing_keeps_every_answer_and_only_resets(searched):
    model, result = searched
    assert result.success.mean() >= 0.9  # otherwise the test would not test much
    polished, resets = polish_counterfactuals(
        logit_function(model), result.originals, result.counterfactuals, result.targets,
        result.original_predictions, confidence=CONFIDENCE)
    predictions = model.predict(polished, verbose=0).argmax(axis=1)
    # Same class reached, re-predicted by the model (a failed search is its original image).
    np.testing.assert_array_equal(predictions, result.counterfactual_predictions)
    assert np.all(resets[~result.success] == 0)
    # Every value is either the search's or the original's, bit for bit.
    assert np.all((polished == result.counterfactuals) | (polished == result.originals))
    before = (result.counterfactuals != result.originals).reshape(NUM_DIGITS, -1).sum(axis=1)
    after = (polished != result.originals).reshape(NUM_DIGITS, -1).sum(axis=1)
    np.testing.assert_array_equal(before - after, resets)
    # The search leaves many changes the prediction does not need: most go.
    assert np.median(after) < 0.75 * np.median(before)
    l1 = np.abs(polished - result.originals).reshape(NUM_DIGITS, -1).sum(axis=1)
    assert np.all(l1 <= np.abs(result.perturbations).reshape(NUM_DIGITS, -1).sum(axis=1) + 1e-6)


def test_a_failed_search_is_left_alone(searched):
    model, result = searched
    # The originals themselves are not counterfactuals: nothing to polish.
    polished, resets = polish_counterfactuals(
        logit_function(model), result.originals, result.originals, result.targets,
        result.original_predictions, confidence=CONFIDENCE)
    np.testing.assert_array_equal(polished, result.originals)
    assert not resets.any()
