"""Target strategies: which class each counterfactual should reach."""

from __future__ import annotations

import numpy as np
import pytest

from pixelflip.explanation.targets import resolve_targets

PROBABILITIES = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])


def test_resolve_targets_other_and_runner_up():
    np.testing.assert_array_equal(resolve_targets("other", PROBABILITIES), [-1, -1, -1])
    # Ties break towards the lower class index.
    np.testing.assert_array_equal(resolve_targets("runner_up", PROBABILITIES), [2, 2, 0])


def test_resolve_targets_class_and_true_label():
    np.testing.assert_array_equal(
        resolve_targets("class", PROBABILITIES, class_index=1), [1, 1, 1]
    )
    targets = resolve_targets("true_label", PROBABILITIES, labels=np.array([0, 0, 2]))
    np.testing.assert_array_equal(targets, [0, 0, 2])
    assert targets.dtype == np.int64


@pytest.mark.parametrize(
    ("strategy", "keywords", "message"),
    [
        ("nearest", {}, "other, runner_up, class, true_label"),
        ("class", {}, "class_index"),
        ("class", {"class_index": 3}, "class_index"),
        ("true_label", {}, "labels"),
        ("true_label", {"labels": np.array([0, 1])}, "labels"),
        ("true_label", {"labels": np.array([0, 1, 5])}, "labels"),
    ],
)
def test_resolve_targets_rejects_bad_arguments(strategy, keywords, message):
    with pytest.raises(ValueError, match=message):
        resolve_targets(strategy, PROBABILITIES, **keywords)


def test_resolve_targets_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="probabilities"):
        resolve_targets("other", np.ones(3))
