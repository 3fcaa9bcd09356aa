"""Counterfactual metrics (distances, validity, cost) and their summary on a hand-made result."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from support.hand_made_results import make_result

from pixelflip.evaluation.counterfactual_metrics import (
    counterfactual_metrics,
    summarize_counterfactuals,
)

TOLERANCE = 1e-3


def test_metrics_have_the_known_distances():
    frame = counterfactual_metrics(make_result(), change_tolerance=TOLERANCE)
    assert list(frame.columns) == [
        "index", "original_prediction", "target", "counterfactual_prediction", "success",
        "l1", "l2", "l0", "target_probability", "original_probability", "area", "regions",
        "iterations", "seconds",
    ]
    np.testing.assert_allclose(frame["l1"], [0.7501, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(frame["l2"], [math.sqrt(0.3125), 0.0, math.sqrt(0.02)], atol=1e-6)
    assert frame["l0"].tolist() == [1, 0, 2]
    # Target -1 reports the probability of the class reached, others of the target class.
    np.testing.assert_allclose(frame["target_probability"], [0.6, 0.2, 0.5])
    np.testing.assert_allclose(frame["original_probability"], [0.8, 0.6, 0.7])
    assert frame["success"].tolist() == [True, False, True]
    assert frame["iterations"].tolist() == [40, 100, 60]
    # Area and regions follow every changed position, however small the change: two diagonal
    # neighbours are one 8-connected region.
    np.testing.assert_allclose(frame["area"], [0.5, 0.0, 0.5])
    assert frame["regions"].tolist() == [1, 0, 1]


def test_area_and_regions_follow_the_mask_a_region_method_gives():
    result = make_result()
    result.masks = np.zeros((3, 2, 2), dtype=bool)
    result.masks[0] = True
    result.masks[2, 0, 0] = True
    result.masks[2, 1, 1] = True
    result.masks[2, 0, 1] = True
    frame = counterfactual_metrics(result, change_tolerance=TOLERANCE)
    np.testing.assert_allclose(frame["area"], [1.0, 0.0, 0.75])
    summary = summarize_counterfactuals(frame)
    assert summary["median_area"] == pytest.approx(0.875)
    assert summary["median_regions"] == pytest.approx(1.0)


def test_separate_blobs_count_as_regions():
    from pixelflip.explanation.changed_regions import changed_regions

    mask = np.zeros((6, 6), dtype=bool)
    mask[0:2, 0:2] = True
    mask[4:6, 4:6] = True
    mask[0, 5] = True
    assert changed_regions(mask)[1] == 3
    mask[2, 2] = mask[3, 3] = True  # a diagonal from one square's corner to the other's
    assert changed_regions(mask)[1] == 2


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
