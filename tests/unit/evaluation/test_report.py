"""Per-image and summary scores of the explanations the evaluate stage reports."""

import numpy as np
import pytest

from pixelflip.attributions.smoothgrad import SmoothGrad
from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual
from pixelflip.evaluation.autoencoders import train_class_autoencoders
from pixelflip.evaluation.im1 import im1_scores
from pixelflip.evaluation.plausibility import nearest_class_distance_ratio
from pixelflip.evaluation.report import (
    ExplanationReport,
    score_attributions,
    score_counterfactuals,
    summary_rows,
    write_report,
)
from pixelflip.evaluation.summary import headline, significant
from pixelflip.explanation.targets import resolve_targets


@pytest.fixture(scope="module")
def brightness():
    """A model that says 1 when the mean pixel is above one half, with images of both classes."""
    import keras

    inputs = keras.Input((6, 6, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[-20.0, 20.0]]),
                                bias_initializer=keras.initializers.Constant([10.0, -10.0]),
                                name="logits")(mean)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    rng = np.random.default_rng(0)
    levels = np.concatenate([rng.integers(0, 100, 40), rng.integers(156, 256, 40)])
    noise = rng.integers(-20, 21, size=(80, 6, 6, 1))
    train_images = np.clip(levels[:, None, None, None] + noise, 0, 255).astype(np.uint8)
    train_labels = np.repeat([0, 1], 40)
    autoencoders = train_class_autoencoders(train_images, train_labels, epochs=1, batch_size=16,
                                            random_state=0)
    images = np.clip(rng.normal([0.35, 0.4, 0.6, 0.65], 0.02, size=(6, 6, 1, 4)), 0, 1)
    images = np.moveaxis(images, -1, 0).astype(np.float32)
    return model, train_images, train_labels, autoencoders, images


def test_counterfactual_scores_add_plausibility_and_im1(brightness):
    model, train_images, train_labels, autoencoders, images = brightness
    probabilities = model.predict(images, verbose=0)
    # True labels that make images 1 and 2 mistakes: "true_label" asks to fix them.
    labels = np.array([0, 1, 0, 1])
    targets = resolve_targets("true_label", probabilities, labels=labels)
    result = ElasticNetCounterfactual(max_iterations=50).explain(model, images, targets)
    frame, summary = score_counterfactuals(
        result, change_tolerance=0.01, train_images=train_images, train_labels=train_labels,
        autoencoders=autoencoders, batch_size=8)
    assert frame["changed"].tolist() == [False, True, True, False]
    np.testing.assert_allclose(frame["plausibility"],
                               nearest_class_distance_ratio(result, train_images, train_labels),
                               equal_nan=True)
    np.testing.assert_allclose(frame["im1"], im1_scores(result, autoencoders), equal_nan=True)
    valid = frame[frame["success"]]
    assert summary["validity"] == 1.0 and summary["success_rate"] == 0.5
    assert summary["median_plausibility"] == pytest.approx(np.median(valid["plausibility"]))
    assert summary["median_im1"] == pytest.approx(np.nanmedian(valid["im1"]))
    assert summary["mean_target_probability"] == pytest.approx(valid["target_probability"].mean())


def test_attribution_scores_and_summary_rows(brightness):
    model, _, _, _, images = brightness
    attribution = SmoothGrad(num_samples=4).explain(model, images)
    summary = score_attributions(model, images, attribution, steps=4, batch_size=8,
                                 random_state=0)
    assert summary["num_images"] == 4
    assert 0.0 <= summary["mean_deletion_auc"] <= 1.0
    assert 0.0 <= summary["mean_insertion_auc"] <= 1.0
    assert summary["mean_seconds"] == pytest.approx(attribution.seconds.mean())
    table = summary_rows({"base": {"attributions": {"sampled": {"smoothgrad": summary}}},
                          "se": {"attributions": {}}}, "attributions")
    assert table[["model", "set", "method"]].values.tolist() == [["base", "sampled", "smoothgrad"]]
    assert table.loc[0, "num_images"] == 4


def test_counterfactual_scores_ask_the_oracle_when_given_one(brightness):
    model, train_images, train_labels, autoencoders, images = brightness
    targets = resolve_targets("other", model.predict(images, verbose=0))
    result = ElasticNetCounterfactual(max_iterations=50).explain(model, images, targets)
    # The explained model as its own oracle agrees with every valid counterfactual.
    frame, summary = score_counterfactuals(
        result, change_tolerance=0.01, train_images=train_images, train_labels=train_labels,
        autoencoders=autoencoders, batch_size=8, oracle=model)
    assert summary["validity"] == 1.0
    assert frame["oracle_agrees"].tolist() == [1.0] * 4
    assert summary["oracle_agreement"] == 1.0 and summary["oracle_original_agreement"] == 1.0
    # An oracle that always says class 0 agrees only where class 0 was the target.
    import keras

    inputs = keras.Input((6, 6, 1))
    zeros = keras.layers.GlobalAveragePooling2D()(inputs)
    always_zero = keras.Model(inputs, keras.layers.Dense(
        2, kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([5.0, -5.0]), activation="softmax")(zeros))
    frame, summary = score_counterfactuals(
        result, change_tolerance=0.01, train_images=train_images, train_labels=train_labels,
        autoencoders=autoencoders, batch_size=8, oracle=always_zero)
    expected = (result.counterfactual_predictions == 0).astype(float)
    np.testing.assert_array_equal(frame["oracle_agrees"], expected)
    assert summary["oracle_agreement"] == pytest.approx(expected.mean())
    without, summary = score_counterfactuals(
        result, change_tolerance=0.01, train_images=train_images, train_labels=train_labels,
        autoencoders=autoencoders, batch_size=8)
    assert "oracle_agrees" not in without and "oracle_agreement" not in summary


def test_the_report_writes_its_seconds_apart_under_timings(brightness, tmp_path, monkeypatch):
    import json

    import pandas as pd

    model, train_images, train_labels, autoencoders, images = brightness
    targets = resolve_targets("other", model.predict(images, verbose=0))
    result = ElasticNetCounterfactual(max_iterations=20).explain(model, images, targets)
    frame, summary = score_counterfactuals(
        result, change_tolerance=0.01, train_images=train_images, train_labels=train_labels,
        autoencoders=autoencoders, batch_size=8, oracle=model)
    attribution = score_attributions(model, images, SmoothGrad(num_samples=4).explain(
        model, images), steps=4, batch_size=8, random_state=0)
    report = ExplanationReport(
        class_names=["dark", "bright"], counterfactual_methods=["elastic_net"],
        attribution_methods=["smoothgrad"], change_tolerance=0.01, deletion_steps=4,
        batch_size=8, random_state=0, figure_rows=2, train_images=train_images,
        train_labels=train_labels, autoencoders=autoencoders)
    # What add_model gathers, without the image files it reads.
    report.evaluation["base"] = {
        "test_accuracy": 0.9, "test_loss": 0.3, "parameters": 74,
        "counterfactuals": {"sampled": {"elastic_net": summary}},
        "attributions": {"sampled": {"smoothgrad": attribution}}}
    for position, (column, value) in enumerate(
            (("model", "base"), ("set", "sampled"), ("method", "elastic_net"))):
        frame.insert(position, column, value)
    report.per_image.append(frame)
    monkeypatch.chdir(tmp_path)

    table = write_report(report)
    assert table.loc[0, "mean_seconds"] == pytest.approx(summary["mean_seconds"])
    written = json.loads((tmp_path / "metrics/evaluation.json").read_text())
    assert "mean_seconds" not in written["base"]["counterfactuals"]["sampled"]["elastic_net"]
    assert "mean_seconds" not in written["base"]["attributions"]["sampled"]["smoothgrad"]
    assert written["base"]["counterfactuals"]["sampled"]["elastic_net"]["validity"] == 1.0
    for name in ("counterfactuals.csv", "attributions.csv", "counterfactuals_per_image.csv"):
        columns = pd.read_csv(tmp_path / "plots/evaluate" / name).columns
        assert "validity" in columns or "mean_deletion_auc" in columns or "l0" in columns
        assert not {"mean_seconds", "seconds"} & set(columns), name
    for name, seconds in (("counterfactuals.csv", summary["mean_seconds"]),
                          ("attributions.csv", attribution["mean_seconds"])):
        timings = pd.read_csv(tmp_path / "timings" / name)
        assert list(timings.columns) == ["model", "set", "method", "mean_seconds"]
        assert timings.loc[0, "mean_seconds"] == pytest.approx(seconds, rel=1e-5)
    # The headline reads the seconds the per-image table no longer shows.
    numbers = headline(report.per_image_table(), accuracies={"base": 0.9},
                       data_metrics={"split_counts": {"train": 80}, "status_counts": {
                           "quarantined": 0}}, methods=["elastic_net"])
    assert numbers.summary["elastic_net"] == {
        "validity": 1.0, "median_l0": significant(np.median(frame["l0"])), "oracle": 1.0}
    assert numbers.timings["elastic_net"]["s_per_image"] == significant(result.seconds.mean())
