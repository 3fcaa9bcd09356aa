"""The model comparison table built from the metrics files the training stages write."""

import itertools

import pytest

from pixelflip.evaluation.comparison import (
    COLUMNS,
    best_model,
    comparison_row,
    comparison_table,
    wilson_interval,
)

# The size of the test split every model of a table was tested on.
TEST_IMAGES = 1500


def metrics(accuracy, val_accuracy, *, module="se", parameters=1000):
    return {"module": module, "backbone": "simple_cnn",
            "test": {"accuracy": accuracy, "loss": 1.0 - accuracy},
            "validation": {"accuracy": val_accuracy, "loss": 0.5},
            "parameters": {"total": parameters, "trainable": parameters},
            "training_seconds": 12.345, "inference_ms_per_image": 0.25, "epochs_run": 3}


def test_one_row_per_model_in_the_given_order_with_every_column():
    table = comparison_table({"base": metrics(0.9, 0.91, module="none"),
                              "se": metrics(0.95, 0.93, parameters=1100),
                              "gc": metrics(0.94, 0.96, module="gc")}, TEST_IMAGES)
    assert list(table.columns) == list(COLUMNS)
    assert list(table["model"]) == ["base", "se", "gc"]
    assert table.loc[1, "parameters"] == 1100
    assert table.loc[0, "module"] == "none"
    assert table.loc[2, "test_loss"] == pytest.approx(0.06)


def test_best_model_is_chosen_by_validation_accuracy_not_test_accuracy():
    table = comparison_table({"base": metrics(0.99, 0.90), "gc": metrics(0.90, 0.95)},
                             TEST_IMAGES)
    assert best_model(table) == "gc"
    assert best_model(table, "test_accuracy") == "base"


def test_a_tie_goes_to_the_model_listed_first():
    table = comparison_table({"base": metrics(0.9, 0.95), "se": metrics(0.9, 0.95)},
                             TEST_IMAGES)
    assert best_model(table) == "base"


def test_metrics_from_an_older_stage_say_which_entry_is_missing():
    old = metrics(0.9, 0.9)
    del old["validation"]
    with pytest.raises(ValueError, match="model 'se' have no entry 'validation'; rerun"):
        comparison_row("se", old, TEST_IMAGES)


def test_empty_input_and_unknown_metric_are_refused():
    with pytest.raises(ValueError, match="no model metrics"):
        comparison_table({}, TEST_IMAGES)
    table = comparison_table({"base": metrics(0.9, 0.9)}, TEST_IMAGES)
    with pytest.raises(ValueError, match="no column 'f1'"):
        best_model(table, "f1")


def test_each_row_carries_the_95_percent_interval_of_its_test_accuracy():
    table = comparison_table({"base": metrics(0.85, 0.9), "se": metrics(0.95, 0.9)}, TEST_IMAGES)
    assert list(COLUMNS).index("test_accuracy_low") == list(COLUMNS).index("test_accuracy") + 1
    assert list(COLUMNS).index("test_accuracy_high") == list(COLUMNS).index("test_accuracy") + 2
    for row in table.itertuples():
        assert (row.test_accuracy_low, row.test_accuracy_high) == pytest.approx(
            wilson_interval(row.test_accuracy, TEST_IMAGES))
        assert row.test_accuracy_low < row.test_accuracy < row.test_accuracy_high
    # The split size is what sets the width: the same accuracy on fewer images is less sure.
    small = comparison_row("base", metrics(0.85, 0.9), 100)
    assert small["test_accuracy_high"] - small["test_accuracy_low"] > (
        table.loc[0, "test_accuracy_high"] - table.loc[0, "test_accuracy_low"])


@pytest.mark.parametrize("accuracy, count, low, high", [
    # Known values of the 95% Wilson score interval.
    (0.85, 1500, 0.8310, 0.8672),
    (0.5, 100, 0.4038, 0.5962),
    (1.0, 10, 0.7225, 1.0),
    (0.0, 10, 0.0, 0.2775),
])
def test_wilson_interval_matches_known_values(accuracy, count, low, high):
    assert wilson_interval(accuracy, count) == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize("accuracy", [0.0, 0.001, 0.3, 0.85, 0.999, 1.0])
@pytest.mark.parametrize("count", [1, 7, 1500, 10**6])
def test_wilson_interval_holds_the_accuracy_and_stays_in_zero_one(accuracy, count):
    low, high = wilson_interval(accuracy, count)
    # At an accuracy of 0 or 1 the bound that meets it comes out one rounding error off.
    rounding = 1e-12
    assert 0.0 <= low <= accuracy + rounding
    assert accuracy - rounding <= high <= 1.0
    assert high - low > 0.0


def test_wilson_interval_narrows_as_the_test_split_grows():
    widths = [high - low for low, high in (wilson_interval(0.9, count)
                                           for count in (10, 100, 1000, 10_000))]
    assert all(later < earlier for earlier, later in itertools.pairwise(widths))
    # Roughly 1/sqrt(n): ten times the images, about a third of the width.
    assert widths[3] / widths[2] == pytest.approx(10 ** -0.5, rel=0.02)


@pytest.mark.parametrize("accuracy, count, message", [
    (0.9, 0, "count=0 is invalid"),
    (0.9, -5, "count=-5 is invalid"),
    (1.5, 100, "accuracy=1.5 is invalid"),
    (-0.1, 100, "accuracy=-0.1 is invalid"),
    (float("nan"), 100, "accuracy=nan is invalid"),
])
def test_wilson_interval_refuses_a_bad_count_or_accuracy(accuracy, count, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(accuracy, count)


def test_a_table_without_test_images_is_refused():
    with pytest.raises(ValueError, match="count=0 is invalid"):
        comparison_table({"base": metrics(0.9, 0.9)}, 0)
