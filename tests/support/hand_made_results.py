"""Counterfactual results built by hand, whose right answers are known.

:func:`make_result` is three tiny images with known perturbations (for the result type and the
distance metrics); :func:`fake_result` puts given images, such as real digits, into a result
predicted as one class and then another (for the plausibility measures).
"""

from __future__ import annotations

import numpy as np

from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.explanation.targets import ANY_OTHER

DIGIT_CLASSES = 10


def make_result(method: str = "elastic_net") -> CounterfactualResult:
    """Three 2x2 two-channel images with known perturbations.

    Image 0 (target -1, success): position (0, 0) changes by +0.5 and -0.25, position (1, 1) by
    1e-4 (below the tolerance): L1 0.7501, L2 sqrt(0.3125 + 1e-8), L0 1.
    Image 1 (target 2, failed): unchanged.
    Image 2 (target 1, success): positions (0, 1) and (1, 0) change by -0.1 in channel 1:
    L1 0.2, L2 sqrt(0.02), L0 2.
    """
    originals = np.full((3, 2, 2, 2), 0.5, dtype=np.float32)
    perturbations = np.zeros_like(originals)
    perturbations[0, 0, 0] = [0.5, -0.25]
    perturbations[0, 1, 1, 0] = 1e-4
    perturbations[2, 0, 1, 1] = -0.1
    perturbations[2, 1, 0, 1] = -0.1
    counterfactuals = originals + perturbations
    return CounterfactualResult(
        method=method,
        originals=originals,
        counterfactuals=counterfactuals,
        perturbations=counterfactuals - originals,
        targets=np.array([ANY_OTHER, 2, 1]),
        original_predictions=np.array([0, 0, 2]),
        original_probabilities=np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.1, 0.7]]),
        counterfactual_predictions=np.array([2, 0, 1]),
        counterfactual_probabilities=np.array(
            [[0.3, 0.1, 0.6], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]]
        ),
        success=np.array([True, False, True]),
        iterations=np.array([40, 100, 60]),
        seconds=np.full(3, 0.5),
    )


def fake_result(originals, counterfactuals, original_class, counterfactual_class, success=None):
    """A result whose images are given, predicted as ``original_class`` then the other class."""
    count = len(originals)

    def confident(class_index):
        probabilities = np.full((count, DIGIT_CLASSES), 0.01)
        probabilities[:, class_index] = 0.91
        return probabilities

    return CounterfactualResult(
        method="by_hand",
        originals=originals,
        counterfactuals=counterfactuals,
        perturbations=np.asarray(counterfactuals) - np.asarray(originals),
        targets=np.full(count, ANY_OTHER),
        original_predictions=np.full(count, original_class),
        original_probabilities=confident(original_class),
        counterfactual_predictions=np.full(count, counterfactual_class),
        counterfactual_probabilities=confident(counterfactual_class),
        success=np.ones(count, dtype=bool) if success is None else success,
        iterations=np.ones(count, dtype=int),
        seconds=np.ones(count),
    )
