"""The black-box Growing Spheres search on a tiny CNN trained on a separable RGB task, and on a
model with no TensorFlow in it at all."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.counterfactual_assertions import (
    assert_failed_search_returns_originals,
    assert_flips_predictions,
    assert_reaches_class,
    assert_rejects_bad_inputs,
    assert_same_counterfactuals,
)

from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual
from pixelflip.counterfactuals.growing_spheres import GrowingSpheresCounterfactual
from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.targets import ANY_OTHER, resolve_targets

SIZE = 16  # not a multiple of the default sample_resolution, 7
SQUARE = 5
CORNERS = ((2, 2), (2, 9), (9, 2), (9, 9))  # class k is a bright square at CORNERS[k]


def make_squares(count: int, seed: int, *, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(count, size, size, 3) float32 noise images with one bright square whose corner is the
    label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CORNERS), count)
    images = rng.uniform(0.0, 0.25, (count, size, size, 3)).astype(np.float32)
    scale = size / SIZE
    for image, label in zip(images, labels):
        top, left = (round(corner * scale) for corner in CORNERS[label])
        side = round(SQUARE * scale)
        image[top : top + side, left : left + side] = rng.uniform(0.6, 1.0, 3)
    return images, labels.astype(np.int64)


class CentroidClassifier:
    """A NumPy-only classifier: softmax of minus the squared distance to each class's mean image.

    It has a ``predict`` method and nothing else, so no gradient can be taken through it.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, temperature: float) -> None:
        self.centroids = np.stack([images[labels == k].mean(axis=0) for k in range(len(CORNERS))])
        self.temperature = temperature

    def predict(self, images: np.ndarray) -> np.ndarray:
        flat = images.reshape(len(images), 1, -1) - self.centroids.reshape(1, len(CORNERS), -1)
        scores = -np.square(flat).sum(axis=2) / self.temperature
        scores -= scores.max(axis=1, keepdims=True)
        return np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)


class GradientTrap(keras.layers.Layer):
    """Identity on the way forward; asking for its gradient raises."""

    def call(self, inputs):
        @tf.custom_gradient
        def identity(images):
            def refuse(upstream):
                raise RuntimeError("a gradient was requested from a black-box model")

            return tf.identity(images), refuse

        return identity(inputs)


@pytest.fixture(scope="module")
def spheres_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    probabilities = keras.layers.Dense(len(CORNERS), activation="softmax")(x)
    model = keras.Model(inputs, probabilities)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    images, labels = make_squares(800, seed=1)
    model.fit(images, labels, epochs=5, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def spheres_images(spheres_model) -> np.ndarray:
    """24 test images the model classifies correctly."""
    images, labels = make_squares(40, seed=2)
    predictions = predict_probabilities(spheres_model, images).argmax(axis=1)
    correct = images[predictions == labels]
    assert len(correct) >= 24, "the fixture model did not learn the squares"
    return correct[:24]


@pytest.fixture(scope="module")
def spheres_untargeted(spheres_model, spheres_images) -> CounterfactualResult:
    targets = np.full(len(spheres_images), ANY_OTHER)
    return GrowingSpheresCounterfactual().explain(spheres_model, spheres_images, targets)


@pytest.fixture(scope="module")
def spheres_dense(spheres_model, spheres_images) -> CounterfactualResult:
    """The same search as ``spheres_untargeted`` without its sparsification step."""
    targets = np.full(len(spheres_images), ANY_OTHER)
    engine = GrowingSpheresCounterfactual(sparsify=False)
    return engine.explain(spheres_model, spheres_images, targets)


def changed_pixels(result: CounterfactualResult) -> np.ndarray:
    """(N, H, W) whether any channel of each pixel differs from the original at all."""
    return np.any(result.counterfactuals != result.originals, axis=-1)


def test_any_other_target_flips_nearly_every_prediction(spheres_untargeted, spheres_images):
    result = spheres_untargeted
    assert len(spheres_images) >= 20
    assert_flips_predictions(
        result, spheres_images, method="growing_spheres", min_success=0.95
    )
    # iterations counts the candidates scored: at least one ball of num_samples per image.
    assert np.all(result.iterations >= 64)
    assert result.counterfactuals.min() >= 0.0
    assert result.counterfactuals.max() <= 1.0


def test_named_target_class_is_reached(spheres_model, spheres_images):
    probabilities = predict_probabilities(spheres_model, spheres_images)
    targets = resolve_targets("class", probabilities, class_index=3)
    result = GrowingSpheresCounterfactual().explain(spheres_model, spheres_images, targets)
    assert_reaches_class(result, 3, min_success=0.9)


def test_search_never_asks_the_model_for_a_gradient(spheres_model, spheres_images):
    inputs = keras.Input(shape=(SIZE, SIZE, 3))
    trapped = keras.Model(inputs, spheres_model(GradientTrap()(inputs)))
    images = spheres_images[:8]
    targets = np.full(len(images), ANY_OTHER)
    # The trap works: a gradient method falls into it.
    with pytest.raises(RuntimeError, match="gradient was requested"):
        ElasticNetCounterfactual(max_iterations=1, binary_search_steps=1).explain(
            trapped, images, targets
        )
    result = GrowingSpheresCounterfactual().explain(trapped, images, targets)
    assert result.success.mean() >= 0.95


def test_a_predict_only_numpy_model_is_explained():
    train_images, train_labels = make_squares(200, seed=3)
    classifier = CentroidClassifier(train_images, train_labels, temperature=2.0)
    images, labels = make_squares(24, seed=4)
    assert np.mean(classifier.predict(images).argmax(axis=1) == labels) >= 0.95
    result = GrowingSpheresCounterfactual().explain(
        classifier, images, np.full(len(images), ANY_OTHER)
    )
    assert result.success.mean() >= 0.95
    np.testing.assert_allclose(
        result.counterfactual_probabilities, classifier.predict(result.counterfactuals),
        atol=1e-6,
    )
    assert np.mean(changed_pixels(result)) < 0.75


def test_photo_sized_images_are_searched_in_a_coarse_grid():
    # 128x128 RGB photos: 49,152 values per image, sampled through a 7x7x3 grid.
    train_images, train_labels = make_squares(40, seed=5, size=128)
    classifier = CentroidClassifier(train_images, train_labels, temperature=50.0)
    images, _ = make_squares(3, seed=6, size=128)
    engine = GrowingSpheresCounterfactual(num_samples=16)
    result = engine.explain(classifier, images, np.full(3, ANY_OTHER))
    assert result.success.all()
    # Sparsification resets every pixel the flip does not need.
    assert np.mean(changed_pixels(result)) < 0.75


def test_sparsification_only_resets_pixels_to_their_original_values(
    spheres_untargeted, spheres_dense
):
    sparse, dense = spheres_untargeted, spheres_dense
    found = sparse.success & dense.success
    assert found.mean() >= 0.95
    sparse_l0 = changed_pixels(sparse).reshape(len(sparse), -1).sum(axis=1)
    dense_l0 = changed_pixels(dense).reshape(len(dense), -1).sum(axis=1)
    assert np.all(sparse_l0[found] <= dense_l0[found])
    assert np.mean(sparse_l0[found]) < 0.9 * np.mean(dense_l0[found])
    # Every value is either exactly the original or exactly what the sphere search found.
    kept_original = sparse.counterfactuals == sparse.originals
    kept_found = sparse.counterfactuals == dense.counterfactuals
    assert np.all(kept_original | kept_found)
    assert np.mean(kept_original) >= 0.3
    assert np.mean(kept_original) > np.mean(dense.counterfactuals == dense.originals)


def test_same_random_state_repeats_and_another_differs(spheres_model, spheres_images):
    images = spheres_images[:6]
    targets = np.full(len(images), ANY_OTHER)
    first, second, other = (
        GrowingSpheresCounterfactual(random_state=seed).explain(spheres_model, images, targets)
        for seed in (3, 3, 4)
    )
    assert_same_counterfactuals(first, second)
    assert not np.array_equal(first.counterfactuals, other.counterfactuals)


def test_grouping_of_images_into_model_calls_does_not_change_the_answer(
    spheres_model, spheres_images
):
    images = spheres_images[:5]
    targets = np.array([ANY_OTHER, 0, 1, 2, ANY_OTHER])
    together = GrowingSpheresCounterfactual(batch_size=1024).explain(
        spheres_model, images, targets
    )
    one_per_call = GrowingSpheresCounterfactual(batch_size=64).explain(
        spheres_model, images, targets
    )
    # Each image draws from its own random stream; only model rounding (~1e-7) differs between
    # batch compositions, which could tip one borderline candidate.
    same = np.all(together.counterfactuals == one_per_call.counterfactuals, axis=(1, 2, 3))
    assert same.sum() >= 4


def test_failed_search_returns_the_original(spheres_model, spheres_images):
    # One sample in a tiny ball and one thin layer cannot move any prediction.
    engine = GrowingSpheresCounterfactual(num_samples=1, initial_radius=1e-4, max_layers=1)
    result = engine.explain(spheres_model, spheres_images[:4], np.full(4, ANY_OTHER))
    assert_failed_search_returns_originals(result, iterations=2)


@pytest.mark.parametrize(
    "keywords",
    [
        {"num_samples": 0},
        {"initial_radius": 0.0},
        {"step": -0.5},
        {"max_layers": 2.5},
        {"sample_resolution": 0},
        {"sparsify": "yes"},
        {"sparsification_candidates": True},
        {"confidence": float("nan")},
        {"batch_size": 0},
        {"random_state": -1},
        {"clip_min": 1.0, "clip_max": 0.0},
    ],
)
def test_bad_settings_raise_value_error(keywords):
    with pytest.raises(ValueError, match=next(iter(keywords))):
        GrowingSpheresCounterfactual(**keywords)


def test_bad_models_and_inputs_raise_value_error(spheres_model, spheres_images):
    engine = GrowingSpheresCounterfactual(num_samples=2, max_layers=1)
    images = spheres_images[:2]
    with pytest.raises(ValueError, match="predict method"):
        engine.explain(lambda batch: batch, images, [0, 1])

    class WrongShape:
        def predict(self, batch):
            return np.ones((len(batch), 1))

    with pytest.raises(ValueError, match="K >= 2"):
        engine.explain(WrongShape(), images, [0, 1])
    assert_rejects_bad_inputs(engine, spheres_model, images, num_classes=len(CORNERS))
