"""Several counterfactuals per image: the rows a search runs for them, and how far apart they
came out."""

from __future__ import annotations

import numpy as np
import pytest

from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.counterfactuals.several import expand_requests, pairwise_distances
from pixelflip.explanation.targets import ANY_OTHER

PROBABILITIES = np.array([[0.6, 0.1, 0.25, 0.05],    # predicted 0; then 2, 1, 3
                          [0.1, 0.2, 0.3, 0.4]])     # predicted 3; then 2, 1, 0


def test_classes_are_the_most_probable_others_and_a_named_target_comes_first():
    sources, targets = expand_requests(np.array([ANY_OTHER, 0]), PROBABILITIES, 3)
    assert sources.tolist() == [0, 0, 0, 1, 1, 1]
    assert targets.tolist() == [2, 1, 3, 0, 2, 1]


def test_one_counterfactual_is_each_image_with_its_own_target():
    sources, targets = expand_requests(np.array([ANY_OTHER, 1]), PROBABILITIES, 1)
    assert sources.tolist() == [0, 1]
    assert targets.tolist() == [ANY_OTHER, 1]


def test_more_classes_than_there_are_is_refused():
    with pytest.raises(ValueError, match="num_counterfactuals=4 .* other classes \\(3\\)"):
        expand_requests(np.array([ANY_OTHER, 1]), PROBABILITIES, 4)


def test_pairwise_distances_average_over_valid_siblings_only():
    originals = np.zeros((4, 1, 2, 1), dtype=np.float32)
    counterfactuals = originals.copy()
    counterfactuals[0, 0, 0] = 1.0        # image 0, first answer
    counterfactuals[1, 0, 1] = 0.5        # image 0, second answer: L1 1.5 from the first
    counterfactuals[3, 0, 0] = 0.2        # image 1: its sibling (row 2) failed
    probabilities = np.full((4, 2), 0.5, dtype=np.float32)
    result = CounterfactualResult(
        method="by_hand", originals=originals, counterfactuals=counterfactuals,
        perturbations=counterfactuals - originals, targets=np.full(4, ANY_OTHER),
        original_predictions=np.zeros(4), original_probabilities=probabilities,
        counterfactual_predictions=np.array([1, 1, 0, 1]),
        counterfactual_probabilities=probabilities, success=np.array([True, True, False, True]),
        iterations=np.ones(4), seconds=np.ones(4), sources=np.array([0, 0, 1, 1]))
    distances = pairwise_distances(result)
    assert distances[:2] == pytest.approx([1.5, 1.5])
    assert np.isnan(distances[2:]).all()


def test_the_elastic_net_search_returns_the_k_best_classes_of_each_image_in_one_call():
    from support.trained_digits import trained_digit_model

    from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual

    model, held = trained_digit_model()
    images = held.images[:8]
    result = ElasticNetCounterfactual(num_counterfactuals=3).explain(
        model, images, np.full(8, ANY_OTHER))
    assert len(result) == 24
    assert result.sources.tolist() == np.repeat(np.arange(8), 3).tolist()
    np.testing.assert_array_equal(result.originals, images[result.sources])
    expected_sources, expected_targets = expand_requests(
        np.full(8, ANY_OTHER), held.probabilities[:8], 3)
    np.testing.assert_array_equal(result.targets, expected_targets)
    # Three different classes per image, none of them the original prediction.
    for rows in result.targets.reshape(8, 3):
        assert len(set(rows.tolist())) == 3
    assert not np.any(result.targets == result.original_predictions)
    assert result.success.mean() >= 0.9
    valid = result.success
    np.testing.assert_array_equal(result.counterfactual_predictions[valid], result.targets[valid])
    distances = pairwise_distances(result)
    # Answers towards different classes differ.
    assert np.nanmin(distances[valid]) > 0
