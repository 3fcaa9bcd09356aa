"""CounterfactualResult, target strategies and counterfactual metrics on hand-made results."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pixelflip.explain import (
    ANY_OTHER,
    CounterfactualResult,
    counterfactual_metrics,
    resolve_targets,
    summarize_counterfactuals,
)

TOLERANCE = 1e-3


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


def test_metrics_have_the_known_distances():
    frame = counterfactual_metrics(make_result(), change_tolerance=TOLERANCE)
    assert list(frame.columns) == [
        "index", "original_prediction", "target", "counterfactual_prediction", "success",
        "l1", "l2", "l0", "target_probability", "original_probability", "iterations", "seconds",
    ]
    np.testing.assert_allclose(frame["l1"], [0.7501, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(frame["l2"], [math.sqrt(0.3125), 0.0, math.sqrt(0.02)], atol=1e-6)
    assert frame["l0"].tolist() == [1, 0, 2]
    # Target -1 reports the probability of the class reached, others of the target class.
    np.testing.assert_allclose(frame["target_probability"], [0.6, 0.2, 0.5])
    np.testing.assert_allclose(frame["original_probability"], [0.8, 0.6, 0.7])
    assert frame["success"].tolist() == [True, False, True]
    assert frame["iterations"].tolist() == [40, 100, 60]


def test_zero_tolerance_counts_every_changed_position():
    frame = counterfactual_metrics(make_result(), change_tolerance=0.0)
    assert frame["l0"].tolist() == [2, 0, 2]


@pytest.mark.parametrize("tolerance", [-0.1, float("nan"), "small"])
def test_bad_tolerance_raises_value_error(tolerance):
    with pytest.raises(ValueError, match="change_tolerance"):
        counterfactual_metrics(make_result(), change_tolerance=tolerance)


def test_summary_averages_valid_counterfactuals_only():
    summary = summarize_counterfactuals(
        counterfactual_metrics(make_result(), change_tolerance=TOLERANCE)
    )
    assert summary["num_images"] == 3
    assert summary["num_valid"] == 2
    assert summary["validity"] == pytest.approx(2 / 3)
    assert summary["median_l1"] == pytest.approx((0.7501 + 0.2) / 2, abs=1e-6)
    assert summary["mean_l0"] == pytest.approx(1.5)
    assert summary["median_l2"] == pytest.approx((math.sqrt(0.3125) + math.sqrt(0.02)) / 2)
    assert summary["mean_seconds"] == pytest.approx(0.5)
    assert summary["mean_iterations"] == pytest.approx(200 / 3)
    json.dumps(summary, allow_nan=False)


def test_summary_without_valid_counterfactuals_is_json_safe():
    frame = counterfactual_metrics(make_result(), change_tolerance=TOLERANCE)
    frame["success"] = False
    summary = summarize_counterfactuals(frame)
    assert summary["validity"] == 0.0
    assert summary["median_l1"] is None and summary["mean_l0"] is None
    json.dumps(summary, allow_nan=False)
    empty = summarize_counterfactuals(frame.iloc[:0])
    assert empty["num_images"] == 0 and empty["validity"] is None
    json.dumps(empty, allow_nan=False)


def test_summary_rejects_a_frame_without_metric_columns():
    with pytest.raises(ValueError, match="lacks the columns"):
        summarize_counterfactuals(pd.DataFrame({"success": [True]}))


def test_save_and_load_round_trip(tmp_path):
    result = make_result()
    path = tmp_path / "nested" / "counterfactuals.npz"
    result.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["counterfactuals.npz"]
    loaded = CounterfactualResult.load(path)
    assert loaded.method == "elastic_net"
    for field in ("originals", "counterfactuals", "perturbations", "targets", "success",
                  "original_probabilities", "counterfactual_probabilities", "iterations",
                  "seconds", "original_predictions", "counterfactual_predictions"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(result, field))
        assert getattr(loaded, field).dtype == getattr(result, field).dtype


def test_load_rejects_a_foreign_file(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(ValueError, match="lacks the fields"):
        CounterfactualResult.load(path)


def test_concatenate_keeps_order_and_checks_compatibility():
    result = make_result()
    joined = CounterfactualResult.concatenate([result, result])
    assert len(joined) == 6
    np.testing.assert_array_equal(joined.targets, [ANY_OTHER, 2, 1, ANY_OTHER, 2, 1])
    np.testing.assert_array_equal(joined.originals[3:], result.originals)
    with pytest.raises(ValueError, match="empty"):
        CounterfactualResult.concatenate([])
    with pytest.raises(ValueError, match="methods"):
        CounterfactualResult.concatenate([result, make_result("growing_spheres")])


def test_to_frame_has_one_row_per_image_with_labels():
    frame = make_result().to_frame(["zero", "one", "two"])
    assert len(frame) == 3
    assert frame["target_label"].tolist() == ["any other", "two", "one"]
    assert frame["counterfactual_label"].tolist() == ["two", "zero", "one"]
    np.testing.assert_allclose(frame["counterfactual_probability"], [0.6, 0.5, 0.5])
    with pytest.raises(ValueError, match="class_names"):
        make_result().to_frame(["zero", "one"])


def test_result_validates_shapes():
    fields = make_result().__dict__.copy()
    with pytest.raises(ValueError, match="counterfactuals"):
        CounterfactualResult(**{**fields, "counterfactuals": fields["counterfactuals"][:2]})
    with pytest.raises(ValueError, match="success"):
        CounterfactualResult(**{**fields, "success": np.array([True])})
    with pytest.raises(ValueError, match="counterfactual_probabilities"):
        CounterfactualResult(
            **{**fields, "counterfactual_probabilities": np.ones((3, 4)) / 4}
        )
    with pytest.raises(ValueError, match="originals"):
        CounterfactualResult(**{**fields, "originals": fields["originals"][0]})


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
