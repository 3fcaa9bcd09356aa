"""Deletion and insertion curves of attribution maps on the left-half squares model (see
:mod:`support.left_half_squares`): where they start and end, independence of the batch, the
summary and the argument checks."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from support.left_half_squares import SIZE, attribution_result, positive_images, trained_model

from pixelflip.attributions.result import AttributionResult
from pixelflip.evaluation.deletion_insertion import (
    deletion_insertion_auc,
    summarize_deletion_insertion,
)
from pixelflip.explanation.inputs import predict_probabilities


@pytest.fixture(scope="module")
def squares_model() -> keras.Model:
    return trained_model()


@pytest.fixture(scope="module")
def positives(squares_model) -> np.ndarray:
    return positive_images()


@pytest.fixture(scope="module")
def results(positives) -> dict[str, AttributionResult]:
    """The maps the curves are drawn for: Grad-CAM's and LIME's of ``positives``."""
    return {name: attribution_result(name) for name in ("grad_cam", "lime")}


@pytest.mark.parametrize("baseline", [0.0, 0.5, "blur"])
def test_curves_start_and_end_at_the_image_and_the_baseline(
    squares_model, positives, results, baseline
):
    images, targets = positives[:4], np.ones(4, dtype=np.int64)
    scores = deletion_insertion_auc(
        squares_model, images, results["grad_cam"].maps[:4], targets, steps=5, baseline=baseline,
        blur_sigma=2.0,
    )
    np.testing.assert_allclose(scores["fractions"], np.linspace(0, 1, 6))
    for key in ("deletion_curve", "insertion_curve"):
        assert scores[key].shape == (4, 6)
    if baseline == "blur":
        from scipy.ndimage import gaussian_filter

        baseline_images = gaussian_filter(images, sigma=(0, 2.0, 2.0, 0))
    else:
        baseline_images = np.full_like(images, baseline)
    on_images = predict_probabilities(squares_model, images)[:, 1]
    on_baseline = predict_probabilities(squares_model, baseline_images)[:, 1]
    np.testing.assert_allclose(scores["deletion_curve"][:, 0], on_images, atol=1e-5)
    np.testing.assert_allclose(scores["insertion_curve"][:, -1], on_images, atol=1e-5)
    np.testing.assert_allclose(scores["deletion_curve"][:, -1], on_baseline, atol=1e-5)
    np.testing.assert_allclose(scores["insertion_curve"][:, 0], on_baseline, atol=1e-5)
    for key in ("deletion_auc", "insertion_auc"):
        np.testing.assert_allclose(
            scores[key], np.trapezoid(scores[key.replace("auc", "curve")], dx=0.2, axis=1)
        )
        assert np.all((scores[key] >= 0) & (scores[key] <= 1))


def test_metric_batch_size_does_not_change_the_scores(squares_model, positives, results):
    maps, targets = results["lime"].maps[:3], np.ones(3, dtype=np.int64)
    small = deletion_insertion_auc(squares_model, positives[:3], maps, targets, batch_size=2)
    large = deletion_insertion_auc(squares_model, positives[:3], maps, targets, batch_size=512)
    for key in ("deletion_curve", "insertion_curve"):
        np.testing.assert_allclose(small[key], large[key], atol=1e-6)


def test_summary_gives_means_and_none_for_no_images():
    scores = {"deletion_auc": np.array([0.1, 0.3]), "insertion_auc": np.array([0.5, 0.9])}
    summary = summarize_deletion_insertion(scores)
    assert summary == pytest.approx(
        {"num_images": 2, "mean_deletion_auc": 0.2, "mean_insertion_auc": 0.7}
    )
    empty = summarize_deletion_insertion({"deletion_auc": [], "insertion_auc": []})
    assert empty == {"num_images": 0, "mean_deletion_auc": None, "mean_insertion_auc": None}
    with pytest.raises(ValueError, match="insertion_auc"):
        summarize_deletion_insertion({"deletion_auc": [0.1]})


@pytest.mark.parametrize(
    "keywords, match",
    [
        ({"steps": 0}, "steps"),
        ({"baseline": "zeros"}, "baseline"),
        ({"baseline": 1.5}, "baseline"),
        ({"blur_sigma": 0.0}, "blur_sigma"),
        ({"batch_size": 1}, "batch_size"),
        ({"maps": np.zeros((2, SIZE, SIZE - 1))}, "maps has shape"),
        ({"maps": np.full((2, SIZE, SIZE), np.nan)}, "maps contains"),
        ({"targets": [-1, 1]}, "-1"),
    ],
)
def test_bad_metric_arguments_raise_value_error(squares_model, positives, keywords, match):
    arguments = {"maps": np.zeros((2, SIZE, SIZE)), "targets": [1, 1], **keywords}
    with pytest.raises(ValueError, match=match):
        deletion_insertion_auc(squares_model, positives[:2], **arguments)
