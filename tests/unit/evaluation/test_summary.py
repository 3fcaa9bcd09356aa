"""The run's headline: a few numbers per model and method, pooled over the models, in small files."""

import json

import numpy as np
import pandas as pd
import pytest

from pixelflip.evaluation.summary import (
    headline,
    headline_metrics,
    seconds_per_image,
    significant,
    write_headline,
)
from pixelflip.stage import layout

DATA_METRICS = {"status_counts": {"kept": 180, "converted": 15, "quarantined": 3, "skipped": 2},
                "split_counts": {"train": 140, "val": 30, "test": 25}}
ACCURACIES = {"base": 0.972000002861023, "se": 0.9760000109672546}


def rows(model, method, l0, success, *, image_set="sampled", seconds=0.5, oracle=None,
         source=None):
    """Per-image rows of one model, set and method, as ``evaluate`` scores them."""
    frame = pd.DataFrame({"model": model, "set": image_set, "method": method,
                          "index": np.arange(len(l0)), "success": success, "l0": l0,
                          "seconds": seconds})
    if oracle is not None:
        frame["oracle_agrees"] = np.where(success, oracle, np.nan)
    if source is not None:
        frame.insert(4, "source", source)
    return frame


def per_image():
    # Elastic-net's median L0 is 10 on base and 102 on se: their mean 56, but 100.5 pooled
    # over all eight valid counterfactuals.
    return pd.concat([
        rows("base", "elastic_net", [10, 9, 11, 500], [True, True, True, False],
             seconds=0.25, oracle=[1.0, 0.0, 1.0, 0.0]),
        rows("se", "elastic_net", [100, 101, 102, 103, 104], [True] * 5, seconds=0.5,
             oracle=[1.0] * 5),
        rows("base", "regions", [40, 41], [True, False], seconds=2.0, oracle=[1.0, 0.0]),
        rows("se", "regions", [30, 31], [False, True], seconds=3.0, oracle=[0.0, 0.0]),
        # The models' mistakes are not in the headline.
        rows("base", "elastic_net", [1], [False], image_set="misclassified", seconds=9.0),
    ], ignore_index=True)


def test_method_numbers_are_pooled_over_every_model_per_counterfactual():
    result = headline(per_image(), accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                      methods=["elastic_net", "regions"])
    elastic_net = result.summary["elastic_net"]
    # 8 of 9 valid; not the mean of the models' validities (0.75 and 1.0 -> 0.875).
    assert elastic_net["validity"] == significant(8 / 9) == 0.8889
    assert elastic_net["median_l0"] == 100.5
    assert elastic_net["oracle"] == 7 / 8
    assert result.summary["regions"] == {"validity": 0.5, "median_l0": 35.5, "oracle": 0.5}
    # Seconds per image over all nine images: 4 at 0.25 s and 5 at 0.5 s.
    assert result.timings == {"elastic_net": {"s_per_image": 0.3889},
                              "regions": {"s_per_image": 2.5}}


def test_models_and_data_get_a_file_each_and_the_flat_names_hold_every_number():
    result = headline(per_image(), accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                      methods=["elastic_net", "regions"])
    assert result.summary["base"] == {"accuracy": 0.972}
    assert result.summary["se"] == {"accuracy": 0.976}
    # Kept: the images in the splits (kept and converted); quarantined: as validate counted.
    assert result.summary["data"] == {"kept": 195, "quarantined": 3}
    assert list(result.summary) == ["base", "se", "elastic_net", "regions", "data"]
    assert result.metrics["accuracy.base"] == 0.972
    assert result.metrics["elastic_net.validity"] == 0.8889
    assert result.metrics["regions.s_per_image"] == 2.5
    assert result.metrics["data.kept"] == 195
    files = [*result.summary.values(), *result.timings.values()]
    assert len(result.metrics) == sum(len(contents) for contents in files) == 12
    assert headline_metrics(per_image(), accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                            methods=["elastic_net", "regions"]) == result.metrics


@pytest.mark.parametrize("value, rounded", [
    (0.0352392282812275, 0.03524), (0.96875, 0.9688), (247.0, 247.0), (12345.6, 12350.0),
    (0.000123456, 0.0001235), (1.0, 1.0), (0.0, 0.0),
])
def test_every_float_keeps_four_significant_digits(value, rounded):
    assert significant(value) == rounded
    # So the files stay short: at most four digits and a point, or an exponent.
    assert len(json.dumps(significant(value))) <= 9


def test_the_oracle_key_is_written_only_where_the_results_hold_the_oracles_answers():
    without = per_image().drop(columns=["oracle_agrees"])
    result = headline(without, accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                      methods=["elastic_net"])
    assert set(result.summary["elastic_net"]) == {"validity", "median_l0"}
    assert "elastic_net.oracle" not in result.metrics
    # One method scored with the oracle, one without: a concat leaves NaN in the other's rows.
    mixed = pd.concat([rows("base", "elastic_net", [3], [True], oracle=[0.0]),
                       rows("base", "regions", [4], [True])], ignore_index=True)
    result = headline(mixed, accuracies={"base": 0.9}, data_metrics=DATA_METRICS,
                      methods=["elastic_net", "regions"])
    assert result.summary["elastic_net"]["oracle"] == 0.0
    assert "oracle" not in result.summary["regions"]


def test_a_method_without_a_valid_counterfactual_has_a_validity_of_zero_and_nothing_else():
    failed = pd.concat([per_image(), rows("base", "growing_spheres", [0, 0], [False, False],
                                          oracle=[0.0, 0.0])], ignore_index=True)
    result = headline(failed, accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                      methods=["elastic_net", "growing_spheres"])
    assert result.summary["growing_spheres"] == {"validity": 0.0}
    assert result.timings["growing_spheres"] == {"s_per_image": 0.5}
    assert "growing_spheres.median_l0" not in result.metrics
    assert not any(value is None or value != value for value in result.metrics.values())


def test_a_method_the_results_lack_and_missing_columns_are_refused():
    with pytest.raises(ValueError, match="no 'sampled' rows of method 'lime'; rerun"):
        headline(per_image(), accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                 methods=["elastic_net", "lime"])
    with pytest.raises(ValueError, match=r"lack the columns \['l0'\]"):
        headline(per_image().drop(columns=["l0"]), accuracies=ACCURACIES,
                 data_metrics=DATA_METRICS, methods=["elastic_net"])
    with pytest.raises(ValueError, match="no entry 'split_counts'; rerun the validate stage"):
        headline(per_image(), accuracies=ACCURACIES, data_metrics={"status_counts": {}},
                 methods=["elastic_net"])


def test_a_method_named_like_a_model_or_the_data_is_refused():
    clash = pd.concat([per_image(), rows("base", "data", [1], [True])], ignore_index=True)
    with pytest.raises(ValueError, match="share a name"):
        headline(clash, accuracies=ACCURACIES, data_metrics=DATA_METRICS, methods=["data"])


def test_several_counterfactuals_of_one_image_add_up_to_its_seconds():
    # Two counterfactuals per image (source 0, 0, 1, 1), a quarter second each.
    several = rows("base", "elastic_net", [5, 6, 7, 8], [True] * 4, seconds=0.25,
                   source=[0, 0, 1, 1])
    single = rows("se", "elastic_net", [5, 6], [True] * 2, seconds=0.5)
    pooled = pd.concat([several, single], ignore_index=True)
    assert seconds_per_image(several) == 0.5
    # Four images of 0.5 s, although the six rows' mean is a third of a second.
    assert seconds_per_image(pooled) == 0.5
    result = headline(pooled, accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                      methods=["elastic_net"])
    assert result.summary["elastic_net"]["validity"] == 1.0


def test_the_files_are_written_in_two_folders_replaced_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stale = tmp_path / layout.SUMMARY_DIR / "removed_method.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    result = headline(per_image(), accuracies=ACCURACIES, data_metrics=DATA_METRICS,
                      methods=["elastic_net", "regions"])
    write_headline(result)
    assert sorted(path.name for path in (tmp_path / layout.SUMMARY_DIR).iterdir()) == [
        "base.json", "data.json", "elastic_net.json", "regions.json", "se.json"]
    assert json.loads((tmp_path / "summary/elastic_net.json").read_text()) == {
        "validity": 0.8889, "median_l0": 100.5, "oracle": 0.875}
    assert sorted(path.name for path in (tmp_path / layout.SUMMARY_TIMINGS_DIR).iterdir()) == [
        "elastic_net.json", "regions.json"]
    assert json.loads((tmp_path / "timings/summary/regions.json").read_text()) == {
        "s_per_image": 2.5}
