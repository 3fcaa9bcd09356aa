"""The batched elastic-net counterfactual search on a tiny CNN trained on a separable task."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from support.counterfactual_assertions import (
    assert_failed_search_returns_originals,
    assert_flips_predictions,
    assert_reaches_class,
    assert_rejects_bad_inputs,
    assert_same_counterfactuals,
)

from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual
from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.targets import ANY_OTHER, resolve_targets

SIZE = 12
BORDER = 2  # the model crops this many pixels on each side, so it never sees them
BAR_COLUMNS = (3, 5, 7)  # class k is a bright vertical bar starting at BAR_COLUMNS[k]


def make_bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 12, 12, 1) float32 noise images with one bright bar whose position is the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(BAR_COLUMNS), count)
    images = rng.uniform(0.0, 0.2, (count, SIZE, SIZE, 1)).astype(np.float32)
    for image, label in zip(images, labels):
        column = BAR_COLUMNS[label]
        image[3:9, column : column + 2, 0] = rng.uniform(0.7, 1.0)
    return images, labels.astype(np.int64)


@pytest.fixture(scope="module")
def explain_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    x = keras.layers.Cropping2D(BORDER)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(len(BAR_COLUMNS), name="logits")(x)
    probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)
    model = keras.Model(inputs, probabilities)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    images, labels = make_bars(600, seed=1)
    model.fit(images, labels, epochs=6, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def explain_images(explain_model) -> np.ndarray:
    images, labels = make_bars(24, seed=2)
    predictions = predict_probabilities(explain_model, images).argmax(axis=1)
    assert np.mean(predictions == labels) >= 0.9, "the fixture model did not learn the bars"
    return images


@pytest.fixture(scope="module")
def explain_untargeted(explain_model, explain_images) -> CounterfactualResult:
    targets = np.full(len(explain_images), ANY_OTHER)
    return ElasticNetCounterfactual().explain(explain_model, explain_images, targets)


def test_default_search_flips_nearly_every_prediction(explain_untargeted, explain_images):
    result = explain_untargeted
    assert_flips_predictions(result, explain_images, method="elastic_net", min_success=0.95)
    assert np.all(result.iterations[result.success] > 0)
    assert np.all(result.seconds > 0)


def test_counterfactuals_stay_in_the_pixel_range(explain_untargeted):
    assert explain_untargeted.counterfactuals.min() >= 0.0
    assert explain_untargeted.counterfactuals.max() <= 1.0


def test_custom_clip_range_is_respected(explain_model, explain_images):
    dimmed = explain_images * 0.8
    engine = ElasticNetCounterfactual(clip_max=0.8)
    result = engine.explain(explain_model, dimmed, np.full(len(dimmed), ANY_OTHER))
    assert result.success.mean() >= 0.9
    assert result.counterfactuals.max() <= np.float32(0.8)
    assert result.counterfactuals.min() >= 0.0


def test_pixels_the_model_cannot_see_are_exactly_unchanged(explain_untargeted):
    perturbations = explain_untargeted.perturbations
    interior = np.zeros((SIZE, SIZE), dtype=bool)
    interior[BORDER:-BORDER, BORDER:-BORDER] = True
    assert np.all(perturbations[:, ~interior, :] == 0.0)
    assert np.any(perturbations[:, interior, :] != 0.0)


def test_proximal_step_keeps_most_visible_pixels_exactly_unchanged(
    explain_model, explain_images, explain_untargeted
):
    interior = (slice(None), slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    sparse_zeros = np.mean(explain_untargeted.perturbations[interior] == 0.0)
    dense = ElasticNetCounterfactual(l1_weight=0.0).explain(
        explain_model, explain_images, np.full(len(explain_images), ANY_OTHER)
    )
    dense_zeros = np.mean(dense.perturbations[interior] == 0.0)
    assert sparse_zeros >= 0.5
    assert sparse_zeros > dense_zeros + 0.2


def test_targeted_search_reaches_the_named_class(explain_model, explain_images):
    probabilities = predict_probabilities(explain_model, explain_images)
    targets = resolve_targets("class", probabilities, class_index=2)
    result = ElasticNetCounterfactual().explain(explain_model, explain_images, targets)
    assert_reaches_class(result, 2, min_success=0.95)


def test_runner_up_targets_are_reached(explain_model, explain_images):
    probabilities = predict_probabilities(explain_model, explain_images)
    targets = resolve_targets("runner_up", probabilities)
    result = ElasticNetCounterfactual().explain(explain_model, explain_images, targets)
    assert result.success.mean() >= 0.95
    np.testing.assert_array_equal(
        result.counterfactual_predictions[result.success], targets[result.success]
    )


def test_same_random_state_gives_identical_arrays(explain_model, explain_images):
    images = explain_images[:8]
    targets = np.full(len(images), ANY_OTHER)
    first = ElasticNetCounterfactual(random_state=3).explain(explain_model, images, targets)
    second = ElasticNetCounterfactual(random_state=3).explain(explain_model, images, targets)
    assert_same_counterfactuals(first, second)


def test_batched_search_matches_one_image_at_a_time(explain_model, explain_images):
    images = explain_images[:5]
    targets = np.array([ANY_OTHER, 0, 1, 2, ANY_OTHER])
    engine = ElasticNetCounterfactual(batch_size=3)
    batched = engine.explain(explain_model, images, targets)
    single = CounterfactualResult.concatenate(
        [engine.explain(explain_model, images[i : i + 1], targets[i : i + 1]) for i in range(5)]
    )
    np.testing.assert_array_equal(batched.success, single.success)
    np.testing.assert_array_equal(batched.counterfactual_predictions,
                                  single.counterfactual_predictions)
    # Each image follows its own path in a batch. Logits may differ by ~1e-7 between batch
    # sizes, which can tip one image's early stop, so allow one image to end elsewhere.
    gaps = np.abs(batched.counterfactuals - single.counterfactuals).reshape(5, -1).max(axis=1)
    assert np.sum(gaps < 1e-4) >= 4
    assert np.sum(batched.iterations == single.iterations) >= 4


def test_images_stop_early_at_different_iterations_and_match_one_at_a_time(
    explain_model, explain_images
):
    # A short patience stops images at different iterations, so the working set is compacted
    # (and, for a single image, emptied) before the round ends.
    images = explain_images[:8]
    targets = np.full(len(images), ANY_OTHER)
    engine = ElasticNetCounterfactual(
        max_iterations=60, early_stopping_patience=3, binary_search_steps=2, batch_size=8
    )
    batched = engine.explain(explain_model, images, targets)
    single = CounterfactualResult.concatenate(
        [engine.explain(explain_model, images[i : i + 1], targets[i : i + 1]) for i in range(8)]
    )
    assert len(set(batched.iterations.tolist())) > 1
    assert np.all(batched.iterations < 2 * 60)
    gaps = np.abs(batched.counterfactuals - single.counterfactuals).reshape(8, -1).max(axis=1)
    assert np.sum(gaps < 1e-4) >= 7
    np.testing.assert_array_equal(batched.success, single.success)


def test_a_single_iteration_books_its_proposal(explain_model, explain_images):
    # The only point a one-iteration round computes a gradient at is the original image, which
    # is never valid; a counterfactual can only come from the proposal checked as the round ends.
    images = explain_images[:8]
    engine = ElasticNetCounterfactual(
        max_iterations=1, learning_rate=5.0, l1_weight=0.0, initial_prediction_weight=10.0,
        binary_search_steps=1,
    )
    result = engine.explain(explain_model, images, np.full(len(images), ANY_OTHER))
    assert np.all(result.iterations == 1)
    assert result.success.mean() >= 0.5


def test_proposal_checks_find_counterfactuals_at_least_as_close_per_round(
    explain_model, explain_images
):
    # One round with a fixed c: checking every proposal books a superset of the points the
    # default books along the same path, so its best distance can only be smaller or equal.
    images = explain_images[:12]
    targets = np.full(len(images), ANY_OTHER)
    # Unpolished: the booked points themselves are compared.
    settings = {"binary_search_steps": 1, "initial_prediction_weight": 5.0, "batch_size": 12,
                "polish": False}
    default = ElasticNetCounterfactual(**settings).explain(explain_model, images, targets)
    checking_engine = ElasticNetCounterfactual(proposal_check_interval=1, **settings)
    assert repr(checking_engine).endswith("proposal_check_interval=1)")
    checked = checking_engine.explain(explain_model, images, targets)
    both = default.success & checked.success
    assert both.mean() >= 0.9
    np.testing.assert_array_equal(default.iterations, checked.iterations)

    def distances(result):
        changes = result.perturbations[both].reshape(int(both.sum()), -1).astype(np.float64)
        return 0.5 * np.abs(changes).sum(axis=1) + np.square(changes).sum(axis=1)

    assert np.all(distances(checked) <= distances(default) + 1e-5)
    assert np.all(checked.perturbations[:, :BORDER] == 0.0)


def test_model_without_logits_layer_falls_back_to_log_probabilities(
    explain_model, explain_images
):
    # Wrapping hides the inner "logits" layer from get_layer.
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    wrapped = keras.Model(inputs, explain_model(inputs))
    with pytest.raises(ValueError):
        wrapped.get_layer("logits")
    images = explain_images[:8]
    result = ElasticNetCounterfactual().explain(wrapped, images, np.full(8, ANY_OTHER))
    assert result.success.mean() >= 0.95


def test_failed_search_returns_the_original(explain_model, explain_images):
    # Two iterations with a tiny step cannot move any prediction.
    engine = ElasticNetCounterfactual(
        max_iterations=2, learning_rate=1e-6, binary_search_steps=1
    )
    result = engine.explain(explain_model, explain_images[:4], np.full(4, ANY_OTHER))
    assert_failed_search_returns_originals(result, iterations=2)


@pytest.mark.parametrize(
    "keywords",
    [
        {"max_iterations": 0},
        {"learning_rate": 0.0},
        {"l1_weight": -0.1},
        {"binary_search_steps": 1.5},
        {"confidence": float("nan")},
        {"clip_min": 1.0, "clip_max": 0.0},
        {"early_stopping_patience": 0},
        {"batch_size": True},
        {"proposal_check_interval": 0},
    ],
)
def test_bad_settings_raise_value_error(keywords):
    with pytest.raises(ValueError, match=next(iter(keywords))):
        ElasticNetCounterfactual(**keywords)


def test_bad_inputs_raise_value_error(explain_model, explain_images):
    engine = ElasticNetCounterfactual(max_iterations=1, binary_search_steps=1)
    images = explain_images[:2]
    with pytest.raises(ValueError, match="dtype"):
        engine.explain(explain_model, (images * 255).astype(np.uint8), [0, 1])
    with pytest.raises(ValueError, match="shape"):
        engine.explain(explain_model, images[0], [0])
    with pytest.raises(ValueError, match="targets"):
        engine.explain(explain_model, images, [0])
    assert_rejects_bad_inputs(engine, explain_model, images, num_classes=len(BAR_COLUMNS))
