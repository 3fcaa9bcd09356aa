"""Timings apart from results: the seconds a rerun changes leave every other number in place."""

import pandas as pd
import pytest

from pixelflip.stage.timings import TIMING_KEYS, split_timing_columns, split_timings


def test_nested_metrics_split_into_results_and_timings_of_the_same_shape():
    metrics = {"test": {"accuracy": 0.9, "loss": 0.3}, "epochs_run": 4, "training_seconds": 12.5,
               "inference_ms_per_image": 0.41, "model": "base",
               "base": {"counterfactuals": {"sampled": {"regions": {
                   "validity": 1.0, "mean_seconds": 0.05}}}},
               "speed": {"mean_seconds": 0.2}, "empty": {}}
    results, timings = split_timings(metrics)
    assert results == {"test": {"accuracy": 0.9, "loss": 0.3}, "epochs_run": 4,
                       "model": "base",
                       "base": {"counterfactuals": {"sampled": {"regions": {"validity": 1.0}}}},
                       "empty": {}}
    assert timings == {"training_seconds": 12.5, "inference_ms_per_image": 0.41,
                       "base": {"counterfactuals": {"sampled": {"regions": {
                           "mean_seconds": 0.05}}}},
                       "speed": {"mean_seconds": 0.2}}


def test_a_table_splits_into_results_and_timings_named_by_their_rows():
    table = pd.DataFrame({"model": ["base", "se"], "test_accuracy": [0.9, 0.8],
                          "training_seconds": [3.0, 4.0], "inference_ms_per_image": [0.1, 0.2]})
    results, timings = split_timing_columns(table, ["model"])
    assert list(results.columns) == ["model", "test_accuracy"]
    assert list(timings.columns) == ["model", "training_seconds", "inference_ms_per_image"]
    assert timings["training_seconds"].tolist() == [3.0, 4.0]
    assert not set(results.columns) & TIMING_KEYS
    with pytest.raises(ValueError, match=r"no columns \['set'\] to name its rows by"):
        split_timing_columns(table, ["model", "set"])
