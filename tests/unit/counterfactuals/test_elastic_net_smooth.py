"""The smooth options of the elastic-net search: a change optimised on a coarse grid and
upsampled (``perturbation_resolution``), and total variation (``tv_weight``).

The bars task of ``test_elastic_net`` checks the structure of the change and the defaults;
a small CNN trained on real MNIST digits (as in ``test_on_trained_digits``) checks that the
smooth changes stay valid, re-predicting every counterfactual, and are smoother than the plain
ones.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.counterfactual_assertions import assert_flips_predictions, assert_same_counterfactuals
from support.trained_digits import trained_digit_model

from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual
from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.counterfactuals.smooth_perturbation import (
    grid_shape,
    needs_smooth_round,
    total_variation,
    total_variation_prox,
)
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.targets import ANY_OTHER

SIZE = 12
BORDER = 2  # the bars model crops this many pixels on each side
BAR_COLUMNS = (3, 5, 7)  # class k is a bright vertical bar starting at BAR_COLUMNS[k]
NUM_DIGITS = 24
COARSE = {"perturbation_resolution": 7}  # 4x4-pixel cells on 28x28 digits
TV = {"tv_weight": 0.5}


def total_variations(result: CounterfactualResult, rows) -> np.ndarray:
    """(n,) anisotropic total variation of the perturbations of ``rows``."""
    return total_variation(tf.constant(result.perturbations[rows])).numpy()


def l1_norms(result: CounterfactualResult, rows) -> np.ndarray:
    return np.abs(result.perturbations[rows]).reshape(int(np.sum(rows)), -1).sum(axis=1)


def bilinear_basis(resolution: int, size: int) -> np.ndarray:
    """(size * size, resolution**2): column k is the bilinear upsampling of grid cell k."""
    cells = np.eye(resolution**2, dtype=np.float32).reshape(-1, resolution, resolution, 1)
    upsampled = tf.image.resize(cells, [size, size], method="bilinear").numpy()
    return upsampled.reshape(resolution**2, -1).T


# --- The bars task: the structure of the change and the defaults -------------------------------


def make_bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 12, 12, 1) float32 noise images with one bright bar whose position is the label
    (the task of ``test_elastic_net``)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(BAR_COLUMNS), count)
    images = rng.uniform(0.0, 0.2, (count, SIZE, SIZE, 1)).astype(np.float32)
    for image, label in zip(images, labels):
        column = BAR_COLUMNS[label]
        image[3:9, column : column + 2, 0] = rng.uniform(0.7, 1.0)
    return images, labels.astype(np.int64)


@pytest.fixture(scope="module")
def bars_model() -> keras.Model:
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
def bars() -> np.ndarray:
    return make_bars(16, seed=2)[0]


def test_a_coarse_change_is_exactly_a_bilinearly_upsampled_grid(bars_model, bars):
    # A pixel range far wider than the images' keeps the clip from cutting the change, so
    # x - x0 is upsample(delta) itself: in the span of the 36 upsampled cells of a 6x6 grid.
    resolution, targets = 6, np.full(len(bars), ANY_OTHER)
    wide = {"clip_min": -4.0, "clip_max": 5.0}
    coarse = ElasticNetCounterfactual(perturbation_resolution=resolution, **wide).explain(
        bars_model, bars, targets
    )
    plain = ElasticNetCounterfactual(**wide).explain(bars_model, bars, targets)
    assert coarse.success.mean() >= 0.9 and plain.success.mean() >= 0.9
    basis = bilinear_basis(resolution, SIZE)

    def relative_residuals(result):
        changes = result.perturbations[result.success].reshape(-1, SIZE * SIZE).T
        coefficients, *_ = np.linalg.lstsq(basis, changes.astype(np.float64), rcond=None)
        residuals = np.abs(basis @ coefficients - changes).max(axis=0)
        return residuals / np.abs(changes).max(axis=0)

    assert np.all(relative_residuals(coarse) < 1e-5)
    assert np.all(relative_residuals(plain) > 0.1)  # a per-pixel change is not such a grid
    # The L1 step zeroes whole cells: a good part of each image stays exactly unchanged.
    unchanged = np.mean(coarse.perturbations[coarse.success] == 0.0, axis=(1, 2, 3))
    assert np.median(unchanged) >= 0.2


def test_defaults_are_the_plain_search_and_a_resolution_of_the_image_side_is_every_pixel(
    bars_model, bars
):
    targets = np.full(len(bars), ANY_OTHER)
    default = ElasticNetCounterfactual().explain(bars_model, bars, targets)
    assert default.success.mean() >= 0.9
    for options in ({"perturbation_resolution": None, "tv_weight": 0.0},
                    {"perturbation_resolution": SIZE}):
        same = ElasticNetCounterfactual(**options).explain(bars_model, bars, targets)
        assert_same_counterfactuals(default, same)
    coarse = ElasticNetCounterfactual(perturbation_resolution=SIZE // 2).explain(
        bars_model, bars, targets
    )
    assert not np.array_equal(coarse.counterfactuals, default.counterfactuals)


def test_smooth_images_stop_early_and_match_one_at_a_time(bars_model, bars):
    # A short patience compacts the working set, grids and total-variation duals included.
    images = bars[:8]
    targets = np.full(len(images), ANY_OTHER)
    engine = ElasticNetCounterfactual(
        max_iterations=60, early_stopping_patience=3, binary_search_steps=2, batch_size=8,
        perturbation_resolution=6, tv_weight=0.5, proposal_check_interval=2,
    )
    batched = engine.explain(bars_model, images, targets)
    single = CounterfactualResult.concatenate(
        [engine.explain(bars_model, images[i : i + 1], targets[i : i + 1]) for i in range(8)]
    )
    assert batched.success.mean() >= 0.75
    assert len(set(batched.iterations.tolist())) > 1
    gaps = np.abs(batched.counterfactuals - single.counterfactuals).reshape(8, -1).max(axis=1)
    assert np.sum(gaps < 1e-4) >= 7
    np.testing.assert_array_equal(batched.success, single.success)


@pytest.mark.parametrize(
    "keywords",
    [
        {"perturbation_resolution": 0},
        {"perturbation_resolution": -1},
        {"perturbation_resolution": float("nan")},
        {"perturbation_resolution": float("inf")},
        {"perturbation_resolution": True},
        {"perturbation_resolution": 4.0},
        {"tv_weight": -0.1},
        {"tv_weight": float("nan")},
        {"tv_weight": float("inf")},
        {"tv_weight": True},
        {"tv_weight": "0.1"},
    ],
)
def test_bad_smooth_settings_raise_value_error_naming_them(keywords):
    with pytest.raises(ValueError, match=next(iter(keywords))):
        ElasticNetCounterfactual(**keywords)


def test_the_settings_are_read_back_and_shown():
    engine = ElasticNetCounterfactual(perturbation_resolution=np.int64(16), tv_weight=1)
    assert engine.perturbation_resolution == 16 and type(engine.perturbation_resolution) is int
    assert engine.tv_weight == 1.0 and type(engine.tv_weight) is float
    assert "perturbation_resolution=16, tv_weight=1.0" in repr(engine)


# --- The pieces ---------------------------------------------------------------------------------


def test_grid_shape_caps_each_side_at_the_image_and_only_real_options_need_the_smooth_round():
    assert grid_shape((12, 20, 3), 16) == (12, 16, 3)
    assert grid_shape((12, 20, 3), None) == (12, 20, 3)

    class Settings:
        def __init__(self, perturbation_resolution, tv_weight):
            self.perturbation_resolution, self.tv_weight = perturbation_resolution, tv_weight

    assert needs_smooth_round(Settings(16, 0.0), (12, 20, 3))
    assert not needs_smooth_round(Settings(20, 0.0), (12, 20, 3))
    assert not needs_smooth_round(Settings(None, 0.0), (12, 20, 3))
    assert needs_smooth_round(Settings(None, 0.1), (12, 20, 3))


def test_total_variation_sums_absolute_neighbour_differences():
    offsets = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    expected = (np.abs(np.diff(offsets, axis=1)).sum(axis=(1, 2, 3))
                + np.abs(np.diff(offsets, axis=2)).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(total_variation(tf.constant(offsets)).numpy(), expected, rtol=1e-5)


def test_total_variation_prox_flattens_noise_and_keeps_flat_images():
    rng = np.random.default_rng(0)
    step = np.zeros((1, 16, 16, 1), np.float32)
    step[:, :, 8:] = 1.0
    noisy = tf.constant(step + rng.normal(0.0, 0.1, step.shape).astype(np.float32))
    threshold = 0.1
    duals = (tf.zeros([1, 15, 16, 1]), tf.zeros([1, 16, 15, 1]))
    solution, _ = total_variation_prox(noisy, duals, (threshold, threshold), 200)

    def objective(points):
        return (0.5 * tf.reduce_sum(tf.square(points - noisy))
                + threshold * tf.reduce_sum(total_variation(points))).numpy()

    assert objective(solution) < 0.5 * objective(noisy)
    for _ in range(5):  # near the minimum: no small random move improves it
        moved = solution + rng.normal(0.0, 1e-2, step.shape).astype(np.float32)
        assert objective(solution) <= objective(moved)
    assert np.abs(solution.numpy() - step).mean() < np.abs(noisy.numpy() - step).mean()
    flat = tf.fill([1, 16, 16, 1], 0.3)
    np.testing.assert_array_equal(total_variation_prox(flat, duals, (0.1, 0.1), 20)[0], flat)


# --- A CNN trained on MNIST digits: validity and smoothness ----------------------------------


@pytest.fixture(scope="module")
def digits():
    """The shared digit CNN (support.trained_digits: three epochs on 4,000 digits), and the first
    NUM_DIGITS held-out digits with their (N,) predicted classes."""
    model, held_out = trained_digit_model()
    held = held_out.images[:NUM_DIGITS]
    predictions = held_out.predictions[:NUM_DIGITS]
    assert np.mean(predictions == held_out.labels[:NUM_DIGITS]) >= 0.85
    return model, held, predictions


@pytest.fixture(scope="module")
def digit_results(digits):
    """``{name: result}`` of the plain search and the smooth options, target ``other``; the
    plain one unpolished, as the smooth ones always are."""
    model, held, _ = digits
    targets = np.full(len(held), ANY_OTHER)
    options = {"plain": {"polish": False}, "coarse": COARSE, "tv": TV, "both": {**COARSE, **TV}}
    # The total-variation prox needs a longer search than the plain one's defaults give it.
    longer = {"max_iterations": 100, "binary_search_steps": 4, "initial_prediction_weight": 1.0,
              "early_stopping_patience": 20}
    return {name: ElasticNetCounterfactual(**longer, **keywords).explain(model, held, targets)
            for name, keywords in options.items()}


@pytest.mark.parametrize("name", ["coarse", "tv", "both"])
def test_smooth_counterfactuals_flip_at_least_90_percent_of_digits(name, digits, digit_results):
    model, held, predictions = digits
    result = digit_results[name]
    assert_flips_predictions(result, held, method="elastic_net", min_success=0.9)
    flipped = predict_probabilities(model, result.counterfactuals).argmax(axis=1) != predictions
    assert flipped.mean() >= 0.9
    np.testing.assert_array_equal(result.success, flipped)
    assert result.counterfactuals.min() >= 0.0 and result.counterfactuals.max() <= 1.0


def test_a_coarse_change_varies_far_less_per_unit_of_change_than_a_per_pixel_one(digit_results):
    plain, coarse = digit_results["plain"], digit_results["coarse"]
    both = plain.success & coarse.success

    def variation_per_l1(result):
        return np.median(total_variations(result, both) / l1_norms(result, both))

    assert variation_per_l1(coarse) < 0.6 * variation_per_l1(plain)


def test_total_variation_lowers_the_variation_of_the_change(digit_results):
    plain, smooth = digit_results["plain"], digit_results["tv"]
    both = plain.success & smooth.success
    assert np.median(total_variations(smooth, both)) < 0.8 * np.median(
        total_variations(plain, both)
    )
    # Flat patches: fewer distinct values of the change per image.
    def distinct(result):
        return np.median([len(np.unique(change)) for change in result.perturbations[both]])

    assert distinct(smooth) < 0.85 * distinct(plain)
