"""The model comparison table built from the metrics files the training stages write."""

import pytest

from pixelflip.evaluation.comparison import COLUMNS, best_model, comparison_row, comparison_table


def metrics(accuracy, val_accuracy, *, module="se", parameters=1000):
    return {"module": module, "backbone": "simple_cnn",
            "test": {"accuracy": accuracy, "loss": 1.0 - accuracy},
            "validation": {"accuracy": val_accuracy, "loss": 0.5},
            "parameters": {"total": parameters, "trainable": parameters},
            "training_seconds": 12.345, "inference_ms_per_image": 0.25, "epochs_run": 3}


def test_one_row_per_model_in_the_given_order_with_every_column():
    table = comparison_table({"base": metrics(0.9, 0.91, module="none"),
                              "se": metrics(0.95, 0.93, parameters=1100),
                              "gc": metrics(0.94, 0.96, module="gc")})
    assert list(table.columns) == list(COLUMNS)
    assert list(table["model"]) == ["base", "se", "gc"]
    assert table.loc[1, "parameters"] == 1100
    assert table.loc[0, "module"] == "none"
    assert table.loc[2, "test_loss"] == pytest.approx(0.06)


def test_best_model_is_chosen_by_validation_accuracy_not_test_accuracy():
    table = comparison_table({"base": metrics(0.99, 0.90), "gc": metrics(0.90, 0.95)})
    assert best_model(table) == "gc"
    assert best_model(table, "test_accuracy") == "base"


def test_a_tie_goes_to_the_model_listed_first():
    table = comparison_table({"base": metrics(0.9, 0.95), "se": metrics(0.9, 0.95)})
    assert best_model(table) == "base"


def test_metrics_from_an_older_stage_say_which_entry_is_missing():
    old = metrics(0.9, 0.9)
    del old["validation"]
    with pytest.raises(ValueError, match="model 'se' have no entry 'validation'; rerun"):
        comparison_row("se", old)


def test_empty_input_and_unknown_metric_are_refused():
    with pytest.raises(ValueError, match="no model metrics"):
        comparison_table({})
    table = comparison_table({"base": metrics(0.9, 0.9)})
    with pytest.raises(ValueError, match="no column 'f1'"):
        best_model(table, "f1")
