"""Attribution maps and their deletion/insertion scores on a tiny CNN that decides by one region.

The task: noise images, class 1 when a bright square sits in the left half, class 0 otherwise;
half of all images also carry a square in the right half, which the model cannot see. A faithful
attribution for class 1 must therefore point at the left half.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from pixelflip.explain.attribution_metrics import (
    deletion_insertion_auc,
    summarize_deletion_insertion,
)
from pixelflip.explain.attributions import (
    ATTRIBUTION_METHODS,
    AttributionResult,
    GradCAM,
    SmoothGrad,
    make_attribution,
    normalize_maps,
    score_model,
)
from pixelflip.explain.result import predict_probabilities

SIZE = 16
SQUARE = 4
HALF = SIZE // 2
# Small settings keep the file fast; the methods' defaults are for real images.
FAST_OPTIONS = {
    "grad_cam": {},
    "score_cam": {"batch_size": 64},
    "smoothgrad": {"num_samples": 8},
    "lime": {"num_samples": 150, "num_segments": 16},
}


def make_squares(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 16, 16, 1) float32 noise images; label 1 iff a bright square is in the left half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    images = rng.uniform(0.0, 0.2, (count, SIZE, SIZE, 1)).astype(np.float32)
    for image, label in zip(images, labels):
        squares = [(0, HALF)] if label else []
        if rng.random() < 0.5:
            squares.append((HALF, SIZE))  # a distractor in the right half
        for low, high in squares:
            row = rng.integers(0, SIZE - SQUARE + 1)
            column = rng.integers(low, high - SQUARE + 1)
            image[row : row + SQUARE, column : column + SQUARE, 0] = rng.uniform(0.8, 1.0)
    return images, labels.astype(np.int64)


@pytest.fixture(scope="module")
def squares_model() -> keras.Model:
    """A CNN shaped like the project's backbone (blocks, global pooling, logits) that sees only
    the left half of its input: the right half is multiplied by zero before the first layer."""
    keras.utils.set_random_seed(0)
    left_half = np.zeros((1, SIZE, SIZE, 1), dtype=np.float32)
    left_half[:, :, :HALF] = 1.0
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    x = keras.ops.multiply(inputs, left_half)
    for index in (1, 2):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{index}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(2, name="logits")(x)
    probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)
    model = keras.Model(inputs, probabilities)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    images, labels = make_squares(1000, seed=1)
    model.fit(images, labels, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def positives(squares_model) -> np.ndarray:
    """Twelve class-1 test images, each with a distractor square on the right as well."""
    images, labels = make_squares(400, seed=2)
    predictions = predict_probabilities(squares_model, images).argmax(axis=1)
    assert np.mean(predictions == labels) >= 0.95, "the fixture model did not learn the task"
    right_half_bright = images[:, :, HALF:, 0].max(axis=(1, 2)) > 0.5
    chosen = np.flatnonzero((labels == 1) & (predictions == 1) & right_half_bright)[:12]
    assert len(chosen) == 12
    return images[chosen]


@pytest.fixture(scope="module")
def results(squares_model, positives) -> dict[str, AttributionResult]:
    targets = np.ones(len(positives), dtype=np.int64)
    return {
        name: make_attribution(name, **FAST_OPTIONS[name]).explain(
            squares_model, positives, targets
        )
        for name in ATTRIBUTION_METHODS
    }


@pytest.mark.parametrize("name", ATTRIBUTION_METHODS)
def test_maps_are_normalised_per_image(results, positives, name):
    result = results[name]
    assert result.method == name
    assert len(result) == len(positives)
    assert result.maps.shape == positives.shape[:3]
    assert result.maps.dtype == np.float32
    assert np.all(np.isfinite(result.maps))
    assert result.maps.min() >= 0.0 and result.maps.max() <= 1.0
    # Per-image min-max: every map spans the whole range (these images all carry evidence).
    np.testing.assert_allclose(result.maps.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(result.maps.min(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_array_equal(result.targets, np.ones(len(positives)))
    assert np.all(result.seconds > 0)


@pytest.mark.parametrize("name", ATTRIBUTION_METHODS)
def test_same_random_state_gives_identical_maps(squares_model, positives, name):
    images, targets = positives[:3], np.ones(3, dtype=np.int64)
    first, second = (
        make_attribution(name, random_state=3, **FAST_OPTIONS[name]).explain(
            squares_model, images, targets
        )
        for _ in range(2)
    )
    np.testing.assert_array_equal(first.maps, second.maps)


@pytest.mark.parametrize("name", ["smoothgrad", "lime"])
def test_random_state_drives_the_random_methods(squares_model, positives, name):
    images, targets = positives[:3], np.ones(3, dtype=np.int64)
    first, second = (
        make_attribution(name, random_state=seed, **FAST_OPTIONS[name]).explain(
            squares_model, images, targets
        )
        for seed in (1, 2)
    )
    assert not np.array_equal(first.maps, second.maps)


def test_smoothgrad_restores_the_global_numpy_random_state(squares_model, positives):
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    SmoothGrad(num_samples=2).explain(squares_model, positives[:2], [1, 1])
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("name", ["grad_cam", "score_cam"])
def test_class_activation_maps_do_not_depend_on_the_batch(squares_model, positives, results, name):
    # Score-CAM's layer has 8 channels, so batch_size 8 means one image per call.
    options = {"batch_size": 2} if name == "grad_cam" else {"batch_size": 8}
    small_batches = make_attribution(name, **options).explain(
        squares_model, positives, np.ones(len(positives), dtype=np.int64)
    )
    np.testing.assert_allclose(small_batches.maps, results[name].maps, atol=1e-5)


@pytest.mark.parametrize("name", ATTRIBUTION_METHODS)
def test_maps_point_at_the_half_the_model_sees(results, name):
    maps = results[name].maps
    left = maps[:, :, :HALF].sum(axis=(1, 2))
    right = maps[:, :, HALF:].sum(axis=(1, 2))
    assert np.all(left > right)
    assert left.sum() > 2 * right.sum()


@pytest.mark.parametrize("name", ATTRIBUTION_METHODS)
def test_maps_beat_random_maps_on_deletion_and_insertion(squares_model, positives, results, name):
    targets = np.ones(len(positives), dtype=np.int64)
    random_maps = np.random.default_rng(0).random(positives.shape[:3])
    scores = deletion_insertion_auc(squares_model, positives, results[name].maps, targets)
    random = deletion_insertion_auc(squares_model, positives, random_maps, targets)
    assert scores["deletion_auc"].mean() < random["deletion_auc"].mean() - 0.2
    assert scores["insertion_auc"].mean() > random["insertion_auc"].mean() + 0.1
    assert np.mean(scores["deletion_auc"] < random["deletion_auc"]) >= 0.9
    assert np.mean(scores["insertion_auc"] > random["insertion_auc"]) >= 0.9


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


def test_missing_targets_explain_the_prediction(squares_model, positives):
    result = GradCAM().explain(squares_model, positives[:4])
    np.testing.assert_array_equal(result.targets, [1, 1, 1, 1])


@pytest.mark.parametrize("name", ["grad_cam", "lime"])
def test_rgb_images(name):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block1")(inputs)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    images = np.random.default_rng(0).random((2, 12, 12, 3), dtype=np.float32)
    result = make_attribution(name, **FAST_OPTIONS[name]).explain(model, images, [0, 2])
    assert result.maps.shape == (2, 12, 12)
    assert result.maps.max() == pytest.approx(1.0)


def test_score_model_falls_back_to_log_probabilities(squares_model, positives):
    # Wrapping hides the inner "logits" layer.
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    wrapped = keras.Model(inputs, squares_model(inputs))
    scores = np.asarray(score_model(wrapped)(positives[:4]))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.softmax(scores)),
        predict_probabilities(squares_model, positives[:4]),
        atol=1e-5,
    )
    result = SmoothGrad(num_samples=2).explain(wrapped, positives[:2], [1, 1])
    assert result.maps.max() == pytest.approx(1.0)


def test_normalize_maps_sends_constant_maps_to_zero():
    maps = np.stack([np.full((3, 3), 7.0), np.arange(9.0).reshape(3, 3)])
    normalised = normalize_maps(maps)
    np.testing.assert_array_equal(normalised[0], 0.0)
    np.testing.assert_allclose(normalised[1], np.arange(9.0).reshape(3, 3) / 8.0)


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("occlusion", {}, "unknown"),
        ("grad_cam", {"num_samples": 3}, "num_samples"),
        ("grad_cam", {"layer_name": 3}, "layer_name"),
        ("grad_cam", {"batch_size": 0}, "batch_size"),
        ("score_cam", {"random_state": -1}, "random_state"),
        ("smoothgrad", {"num_samples": 0}, "num_samples"),
        ("smoothgrad", {"noise_level": 0.0}, "noise_level"),
        ("lime", {"num_samples": 1}, "num_samples"),
        ("lime", {"hide_color": 2.0}, "hide_color"),
        ("lime", {"compactness": float("nan")}, "compactness"),
    ],
)
def test_bad_settings_raise_value_error(name, options, match):
    with pytest.raises(ValueError, match=match):
        make_attribution(name, **options)


def test_bad_inputs_raise_value_error(squares_model, positives):
    images = positives[:2]
    with pytest.raises(ValueError, match="-1"):
        GradCAM().explain(squares_model, images, [-1, 1])
    with pytest.raises(ValueError, match="targets contains"):
        GradCAM().explain(squares_model, images, [0, 2])
    with pytest.raises(ValueError, match="dtype"):
        GradCAM().explain(squares_model, (images * 255).astype(np.uint8), [0, 1])
    with pytest.raises(ValueError, match="not a layer"):
        GradCAM(layer_name="block9").explain(squares_model, images, [0, 1])
    with pytest.raises(ValueError, match="feature maps"):
        GradCAM(layer_name="logits").explain(squares_model, images, [0, 1])
    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    no_blocks = keras.Model(inputs, squares_model(inputs))
    with pytest.raises(ValueError, match="no feature block"):
        GradCAM().explain(no_blocks, images, [0, 1])
    with pytest.raises(ValueError, match="outside"):
        AttributionResult("grad_cam", np.full((1, 2, 2), 2.0), [0], [0.1])
    with pytest.raises(ValueError, match="targets"):
        AttributionResult("grad_cam", np.zeros((2, 2, 2)), [0], [0.1, 0.1])


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
