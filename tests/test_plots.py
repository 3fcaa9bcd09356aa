"""Every figure renders to a non-trivial PNG, and the perturbation heatmap reads the right way."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from pixelflip import plots
from pixelflip.explain import CounterfactualResult


def greyscale_triplet():
    original = np.zeros((8, 8, 1), dtype=np.float32)
    original[2:6, 3:5] = 0.8
    perturbation = np.zeros_like(original)
    perturbation[1, 1] = 0.5  # brighter
    perturbation[2, 3] = -0.6  # darker
    return original, original + perturbation, perturbation


def perturbation_colours(figure) -> np.ndarray:
    (axis,) = [axis for axis in figure.axes if axis.get_label() == "perturbation"]
    heatmap = axis.images[0]
    return heatmap.to_rgba(heatmap.get_array())[..., :3].reshape(-1, 3)


def is_red(colours):
    return colours[:, 0] > colours[:, 2] + 0.2


def is_blue(colours):
    return colours[:, 2] > colours[:, 0] + 0.2


def assert_png(path, minimum_bytes=5_000):
    assert path.exists() and path.stat().st_size > minimum_bytes
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    # Not a blank canvas: the figure has many distinct colours.
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20
    return pixels


def make_result(count=3, channels=1) -> CounterfactualResult:
    rng = np.random.default_rng(0)
    originals = rng.uniform(0, 1, (count, 10, 10, channels)).astype(np.float32)
    counterfactuals = np.clip(originals + rng.normal(0, 0.2, originals.shape), 0, 1)
    probabilities = np.tile([0.7, 0.2, 0.1], (count, 1))
    return CounterfactualResult(
        method="elastic_net",
        originals=originals,
        counterfactuals=counterfactuals,
        perturbations=counterfactuals - originals,
        targets=np.full(count, -1),
        original_predictions=np.zeros(count, dtype=int),
        original_probabilities=probabilities,
        counterfactual_predictions=np.array([1] * (count - 1) + [0]),
        counterfactual_probabilities=probabilities[:, [1, 0, 2]],
        success=np.array([True] * (count - 1) + [False]),
        iterations=np.full(count, 10),
        seconds=np.full(count, 0.1),
    )


def test_counterfactual_figure_is_written_as_png(tmp_path):
    original, counterfactual, perturbation = greyscale_triplet()
    figure = plots.plot_counterfactual(
        original, counterfactual, perturbation,
        original_label="cat", counterfactual_label="dog",
        original_probability=0.91, counterfactual_probability=0.55, title="one image",
    )
    titles = [axis.get_title() for axis in figure.axes]
    assert "original: cat (0.91)" in titles and "counterfactual: dog (0.55)" in titles
    path = tmp_path / "figures" / "counterfactual.png"
    plots.save_figure(figure, path)
    pixels = assert_png(path)
    # 9 x 3.2 inches at 120 dpi.
    assert pixels.shape[1] == 9 * plots.DPI
    assert [p.name for p in path.parent.iterdir()] == ["counterfactual.png"]


def test_perturbation_heatmap_is_red_for_brighter_and_blue_for_darker():
    original, counterfactual, perturbation = greyscale_triplet()
    figure = plots.plot_counterfactual(
        original, counterfactual, perturbation, original_label="a", counterfactual_label="b",
        original_probability=0.9, counterfactual_probability=0.6,
    )
    colours = perturbation_colours(figure).reshape(8, 8, 3)
    assert is_red(colours[1:2, 1]).all()
    assert is_blue(colours[2:3, 3]).all()
    (axis,) = [axis for axis in figure.axes if axis.get_label() == "perturbation"]
    norm = axis.images[0].norm
    assert norm.vmin == -norm.vmax  # centred at zero: unchanged pixels are white
    # Colour bar present.
    assert len(figure.axes) == 4


def test_single_sign_perturbation_uses_one_colour():
    original, _, _ = greyscale_triplet()
    perturbation = np.zeros_like(original)
    perturbation[4, 4] = 0.3
    figure = plots.plot_counterfactual(
        original, original + perturbation, perturbation, original_label="a",
        counterfactual_label="b", original_probability=0.9, counterfactual_probability=0.6,
    )
    colours = perturbation_colours(figure)
    assert is_red(colours).any() and not is_blue(colours).any()


def test_greyscale_is_grey_and_rgb_is_colour():
    original, counterfactual, perturbation = greyscale_triplet()
    grey = plots.plot_counterfactual(
        original, counterfactual, perturbation, original_label="a", counterfactual_label="b",
        original_probability=0.9, counterfactual_probability=0.6,
    )
    assert grey.axes[0].images[0].get_cmap().name == "gray"
    rgb = np.random.default_rng(1).uniform(0, 1, (8, 8, 3)).astype(np.float32)
    colour = plots.plot_counterfactual(
        rgb, rgb, np.zeros_like(rgb), original_label="a", counterfactual_label="b",
        original_probability=0.9, counterfactual_probability=0.6,
    )
    assert colour.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_counterfactual_rejects_mismatched_shapes():
    original, counterfactual, _ = greyscale_triplet()
    with pytest.raises(ValueError, match="perturbation"):
        plots.plot_counterfactual(
            original, counterfactual, np.zeros((4, 4, 1)), original_label="a",
            counterfactual_label="b", original_probability=0.9, counterfactual_probability=0.6,
        )


@pytest.mark.parametrize("channels", [1, 3])
def test_counterfactual_grid_has_one_row_per_image(tmp_path, channels):
    result = make_result(count=3, channels=channels)
    figure = plots.plot_counterfactual_grid(result, ["cat", "dog", "bird"], max_images=2)
    heatmaps = [axis for axis in figure.axes if axis.get_label() == "perturbation"]
    assert len(heatmaps) == 2
    titles = " ".join(axis.get_title() for axis in figure.axes)
    assert "dog (0.70)" in titles and "flipped" in titles and "target any other" in titles
    everything = plots.plot_counterfactual_grid(result, None)
    titles = " ".join(axis.get_title() for axis in everything.axes)
    assert "failed" in titles
    path = tmp_path / "grid.png"
    plots.save_figure(figure, path)
    assert_png(path)


def test_counterfactual_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_images"):
        plots.plot_counterfactual_grid(make_result(), None, max_images=0)
    with pytest.raises(ValueError, match="class_names"):
        plots.plot_counterfactual_grid(make_result(), ["cat"])


def test_training_history_has_loss_and_accuracy_panels(tmp_path):
    history = {
        "loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
        "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.45, 0.6, 0.65],
    }
    figure = plots.plot_training_history(history)
    loss_axis, accuracy_axis = figure.axes
    assert len(loss_axis.lines) == 2 and len(accuracy_axis.lines) == 2
    np.testing.assert_allclose(accuracy_axis.lines[1].get_ydata(), history["val_accuracy"])
    path = tmp_path / "history.png"
    plots.save_figure(figure, path)
    assert_png(path)
    with pytest.raises(ValueError, match="loss"):
        plots.plot_training_history({"accuracy": [0.5]})


def test_model_comparison_draws_one_group_per_model(tmp_path):
    frame = pd.DataFrame(
        {"model": ["base", "cbam", "se"], "accuracy": [0.9, 0.93, float("nan")],
         "validity": [1.0, 0.95, 0.97]}
    )
    figure = plots.plot_model_comparison(frame, ["accuracy", "validity"])
    (axis,) = figure.axes
    assert [label.get_text() for label in axis.get_yticklabels()] == ["base", "cbam", "se"]
    assert len(axis.patches) == 6
    assert "n/a" in [text.get_text() for text in axis.texts]
    path = tmp_path / "comparison.png"
    plots.save_figure(figure, path)
    assert_png(path)
    with pytest.raises(ValueError, match="latency"):
        plots.plot_model_comparison(frame, ["latency"])
    with pytest.raises(ValueError, match="empty"):
        plots.plot_model_comparison(frame.iloc[:0], ["accuracy"])
