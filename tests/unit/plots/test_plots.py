"""Every figure renders to a non-trivial PNG, and the perturbation heatmap reads the right way."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.colors
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import BarContainer

from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.plots.attention import attention_overlay, plot_attention_maps
from pixelflip.plots.changes import (
    changed_regions,
    describe_changed_regions,
)
from pixelflip.plots.common import (
    DPI,
    FAILURE_COLOR,
    SUCCESS_COLOR,
    save_figure,
)
from pixelflip.plots.comparison import plot_comparison_table, plot_model_comparison
from pixelflip.plots.counterfactuals import (
    plot_counterfactual,
    plot_counterfactual_grid,
    plot_explanation_grid,
    plot_explanation_row,
)
from pixelflip.plots.training import plot_training_history


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


def make_result(count=3, channels=1, size=10, originals=None, perturbations=None, masks=None,
                distractor_indices=None):
    """Image 0..count-2 flipped from "cat" to "dog", the last one failed."""
    rng = np.random.default_rng(0)
    if originals is None:
        originals = rng.uniform(0, 1, (count, size, size, channels)).astype(np.float32)
    if perturbations is None:
        perturbations = rng.normal(0, 0.2, originals.shape)
    counterfactuals = np.clip(originals + perturbations, 0, 1)
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
        masks=masks,
        distractor_indices=distractor_indices,
    )


def test_counterfactual_figure_is_written_as_png(tmp_path):
    original, counterfactual, perturbation = greyscale_triplet()
    figure = plot_counterfactual(
        original, counterfactual, perturbation,
        original_label="cat", counterfactual_label="dog",
        original_probability=0.91, counterfactual_probability=0.55, title="one image",
    )
    titles = [axis.get_title() for axis in figure.axes]
    assert "original: cat (0.91)" in titles and "counterfactual: dog (0.55)" in titles
    path = tmp_path / "figures" / "counterfactual.png"
    save_figure(figure, path)
    pixels = assert_png(path)
    # 9 x 3.2 inches at 120 dpi.
    assert pixels.shape[1] == 9 * DPI
    assert [p.name for p in path.parent.iterdir()] == ["counterfactual.png"]


def test_perturbation_heatmap_is_red_for_brighter_and_blue_for_darker():
    original, counterfactual, perturbation = greyscale_triplet()
    figure = plot_counterfactual(
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
    figure = plot_counterfactual(
        original, original + perturbation, perturbation, original_label="a",
        counterfactual_label="b", original_probability=0.9, counterfactual_probability=0.6,
    )
    colours = perturbation_colours(figure)
    assert is_red(colours).any() and not is_blue(colours).any()


def test_greyscale_is_grey_and_rgb_is_colour():
    original, counterfactual, perturbation = greyscale_triplet()
    grey = plot_counterfactual(
        original, counterfactual, perturbation, original_label="a", counterfactual_label="b",
        original_probability=0.9, counterfactual_probability=0.6,
    )
    assert grey.axes[0].images[0].get_cmap().name == "gray"
    rgb = np.random.default_rng(1).uniform(0, 1, (8, 8, 3)).astype(np.float32)
    colour = plot_counterfactual(
        rgb, rgb, np.zeros_like(rgb), original_label="a", counterfactual_label="b",
        original_probability=0.9, counterfactual_probability=0.6,
    )
    assert colour.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_counterfactual_rejects_mismatched_shapes():
    original, counterfactual, _ = greyscale_triplet()
    with pytest.raises(ValueError, match="perturbation"):
        plot_counterfactual(
            original, counterfactual, np.zeros((4, 4, 1)), original_label="a",
            counterfactual_label="b", original_probability=0.9, counterfactual_probability=0.6,
        )


@pytest.mark.parametrize("channels", [1, 3])
def test_counterfactual_grid_has_one_row_per_image(tmp_path, channels):
    result = make_result(count=3, channels=channels)
    figure = plot_counterfactual_grid(result, ["cat", "dog", "bird"], max_images=2)
    heatmaps = [axis for axis in figure.axes if axis.get_label() == "perturbation"]
    assert len(heatmaps) == 2
    titles = " ".join(axis.get_title() for axis in figure.axes)
    assert "dog (0.70)" in titles and "flipped" in titles and "target any other" in titles
    everything = plot_counterfactual_grid(result, None)
    titles = " ".join(axis.get_title() for axis in everything.axes)
    assert "failed" in titles
    path = tmp_path / "grid.png"
    save_figure(figure, path)
    assert_png(path)


def test_counterfactual_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_images"):
        plot_counterfactual_grid(make_result(), None, max_images=0)
    with pytest.raises(ValueError, match="class_names"):
        plot_counterfactual_grid(make_result(), ["cat"])


def test_training_history_has_loss_and_accuracy_panels(tmp_path):
    history = {
        "loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
        "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.45, 0.6, 0.65],
    }
    figure = plot_training_history(history)
    loss_axis, accuracy_axis = figure.axes
    assert len(loss_axis.lines) == 2 and len(accuracy_axis.lines) == 2
    np.testing.assert_allclose(accuracy_axis.lines[1].get_ydata(), history["val_accuracy"])
    path = tmp_path / "history.png"
    save_figure(figure, path)
    assert_png(path)
    with pytest.raises(ValueError, match="loss"):
        plot_training_history({"accuracy": [0.5]})


def test_model_comparison_draws_one_group_per_model(tmp_path):
    frame = pd.DataFrame(
        {"model": ["base", "cbam", "se"], "accuracy": [0.9, 0.93, float("nan")],
         "validity": [1.0, 0.95, 0.97]}
    )
    figure = plot_model_comparison(frame, ["accuracy", "validity"])
    (axis,) = figure.axes
    assert [label.get_text() for label in axis.get_yticklabels()] == ["base", "cbam", "se"]
    assert len(axis.patches) == 6
    assert "n/a" in [text.get_text() for text in axis.texts]
    path = tmp_path / "comparison.png"
    save_figure(figure, path)
    assert_png(path)
    with pytest.raises(ValueError, match="latency"):
        plot_model_comparison(frame, ["latency"])
    with pytest.raises(ValueError, match="empty"):
        plot_model_comparison(frame.iloc[:0], ["accuracy"])


def labels_of(figure) -> list[str]:
    return [axis.get_label() for axis in figure.axes]


def two_squares_mask(count=3, size=8):
    """Every image's mask: two separate 2x2 squares, 8 of 64 pixels (12.5%), 2 regions."""
    masks = np.zeros((count, size, size), dtype=bool)
    masks[:, 2:4, 2:4] = True
    masks[:, 5:7, 5:7] = True
    return masks


def outline_vertices(axis) -> np.ndarray:
    """The (x, y) points of the changed-region outlines drawn on ``axis``."""
    (outline,) = axis.collections
    return np.concatenate([path.vertices for path in outline.get_paths()])


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (128, 3)])
def test_explanation_grid_shows_changed_regions_counterfactual_and_grad_cam(
        tmp_path, size, channels):
    result = make_result(count=3, channels=channels, size=size)
    # Grad-CAM maps at a coarse feature-map resolution, stretched over the image.
    maps = np.random.default_rng(1).uniform(0, 1, (3, 7, 7))
    figure = plot_explanation_grid(
        result, maps, ["cat", "dog", "bird"], rows=2, title="base / elastic_net"
    )
    assert labels_of(figure) == ["original", "changed", "counterfactual", "attribution"] * 2
    titles = [axis.get_title() for axis in figure.axes]
    assert titles[0] == "#0 original: cat (0.70)" and titles[4].startswith("#1 original: cat")
    assert titles[2].startswith("counterfactual: dog (0.70)") and "flipped" in titles[2]
    assert titles[3] == "Grad-CAM"
    # A pixel method's haze: nearly every pixel changed, as measured on the mask.
    share, regions = changed_regions(result.masks[0])
    assert share > 0.9 and titles[1] == f"changed: {describe_changed_regions(result.masks[0])}"
    assert figure.get_suptitle() == "base / elastic_net"
    # The changed panel is the original itself, in grey or colour, with the outline over it.
    changed = figure.axes[1]
    np.testing.assert_allclose(np.squeeze(changed.images[0].get_array()),
                               np.squeeze(result.originals[0]), atol=1e-6)
    assert changed.images[0].get_array().shape == ((size, size) if channels == 1 else
                                                   (size, size, 3))
    assert len(changed.collections) == 1 and len(figure.axes[2].collections) == 1
    # The attribution panel: the grey image, then the map over the whole image.
    grey, heat = figure.axes[3].images
    assert grey.get_array().shape == (size, size) and grey.get_cmap().name == "gray"
    assert heat.get_cmap().name == "jet" and heat.get_extent() == [
        -0.5, size - 0.5, size - 0.5, -0.5
    ]
    path = tmp_path / "explanations.png"
    save_figure(figure, path)
    pixels = assert_png(path)
    assert pixels.shape[1] == round(4 * 2.7 * DPI)


def test_changed_regions_are_outlined_along_pixel_edges_and_counted():
    result = make_result(count=3, size=8, masks=two_squares_mask())
    figure = plot_explanation_grid(result, None, ["cat", "dog", "bird"], rows=3)
    # Without attribution maps or distractors: three columns.
    assert labels_of(figure) == ["original", "changed", "counterfactual"] * 3
    assert figure.axes[1].get_title() == "changed: area 12% · 2 regions"
    for axis in figure.axes[1], figure.axes[2]:
        vertices = outline_vertices(axis)
        # On the edges between changed and unchanged pixels, around the two squares only.
        assert vertices[:, 0].min() == 1.5 and vertices[:, 0].max() == 6.5
        assert vertices[:, 1].min() == 1.5 and vertices[:, 1].max() == 6.5
        in_first = np.all((vertices >= 1.5) & (vertices <= 3.5), axis=1)
        in_second = np.all((vertices >= 4.5) & (vertices <= 6.5), axis=1)
        assert (in_first | in_second).all() and in_first.any() and in_second.any()
        # Drawing the outline keeps the image's extent and its downward y axis.
        assert axis.get_xlim() == (-0.5, 7.5) and axis.get_ylim() == (7.5, -0.5)
    # The counterfactual is the image itself, titled with the prediction as before.
    np.testing.assert_allclose(np.squeeze(figure.axes[2].images[0].get_array()),
                               np.squeeze(result.counterfactuals[0]), atol=1e-6)
    assert figure.axes[2].title.get_color() == SUCCESS_COLOR


def test_a_haze_too_fragmented_to_outline_is_tinted_instead():
    # Half the pixels of a 28 x 28 image at random: about 750 changed/unchanged edges, far more
    # than ten times H + W (560); outlines would hide the image.
    masks = np.random.default_rng(6).uniform(size=(2, 28, 28)) < 0.5
    result = make_result(count=2, size=28, masks=masks)
    figure = plot_explanation_grid(result, None, None, rows=1)
    changed, counterfactual = figure.axes[1], figure.axes[2]
    share, regions = changed_regions(masks[0])
    assert changed.get_title() == f"changed: area {100 * share:.0f}% · {regions} regions"
    for axis in changed, counterfactual:
        assert not axis.collections
        image, tint = axis.images
        alpha = np.asarray(tint.get_array())[..., 3]
        np.testing.assert_array_equal(alpha > 0, masks[0])


def test_an_unchanged_image_has_no_outline_and_says_so():
    masks = two_squares_mask(count=2)
    masks[1] = False
    result = make_result(count=2, size=8, masks=masks)
    figure = plot_explanation_grid(result, None, None)
    changed = [axis for axis in figure.axes if axis.get_label() == "changed"]
    assert changed[1].get_title() == "changed: area 0% · 0 regions"
    assert not changed[1].collections and len(changed[0].collections) == 1


@pytest.mark.parametrize("channels", [1, 3])
def test_distractor_column_shows_the_pasted_image_or_none(channels):
    result = make_result(count=3, channels=channels, size=8, masks=two_squares_mask(),
                         distractor_indices=[5, -1, 7])
    distractors = np.random.default_rng(4).uniform(0, 1, result.originals.shape)
    maps = np.random.default_rng(1).uniform(0, 1, (3, 4, 4))
    figure = plot_explanation_grid(result, maps, None, rows=3, distractors=distractors)
    assert labels_of(figure) == [
        "original", "changed", "counterfactual", "distractor", "attribution"] * 3
    first, second, third = [axis for axis in figure.axes if axis.get_label() == "distractor"]
    assert first.get_title() == "distractor #5" and third.get_title() == "distractor #7"
    np.testing.assert_allclose(np.squeeze(first.images[0].get_array()),
                               np.squeeze(distractors[0]), atol=1e-6)
    # The pasted regions sit at the same positions on the distractor: outlined too.
    assert len(first.collections) == 1
    # No distractor for image 1: an empty panel that says so.
    assert not second.images and [text.get_text() for text in second.texts] == ["none"]
    # Without distractors, or when no drawn image used one, there is no such column.
    assert "distractor" not in labels_of(plot_explanation_grid(result, maps, None))
    assert "distractor" not in labels_of(
        plot_explanation_grid(make_result(count=3, channels=channels, size=8), None, None,
                              distractors=distractors))
    none_drawn = make_result(count=3, channels=channels, size=8,
                             distractor_indices=[-1, -1, 7])
    assert "distractor" not in labels_of(
        plot_explanation_grid(none_drawn, None, None, rows=2, distractors=distractors))
    # The one-image row takes them too.
    row = plot_explanation_row(result, None, None, index=2, distractors=distractors)
    assert labels_of(row) == ["original", "changed", "counterfactual", "distractor"]
    assert row.axes[3].get_title() == "distractor #7"


def test_explanation_row_draws_one_image(tmp_path):
    result = make_result(count=3, channels=1, size=28)
    maps = np.random.default_rng(3).uniform(0, 1, (3, 28, 28, 1))
    figure = plot_explanation_row(result, maps, None, index=2, title="cbam")
    assert labels_of(figure) == ["original", "changed", "counterfactual", "attribution"]
    titles = [axis.get_title() for axis in figure.axes]
    assert titles[0] == "#2 original: 0 (0.70)" and "failed" in titles[2]
    assert titles[1] == f"changed: {describe_changed_regions(result.masks[2])}"
    assert figure.axes[2].title.get_color() == FAILURE_COLOR
    path = tmp_path / "row.png"
    save_figure(figure, path)
    assert_png(path)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda result: plot_explanation_grid(result, np.zeros((2, 4, 4)), None),
         "attribution_maps"),
        (lambda result: plot_explanation_grid(result, np.full((3, 4, 4), np.nan), None),
         "attribution_maps"),
        (lambda result: plot_explanation_grid(result, None, None, rows=0), "rows"),
        (lambda result: plot_explanation_grid(result, None, ["cat"]), "class_names"),
        (lambda result: plot_explanation_row(result, None, None, index=3), "index"),
        (lambda result: plot_explanation_row(result, None, ["cat"]), "class_names"),
        (lambda result: plot_explanation_grid(result, None, None,
                                              distractors=np.zeros((3, 10, 10, 3))),
         "distractors"),
        (lambda result: plot_explanation_grid(result, None, None,
                                              distractors=np.zeros((2, 10, 10, 1))),
         "distractors"),
        (lambda result: plot_explanation_row(result, None, None,
                                             distractors=np.full((3, 10, 10, 1), np.nan)),
         "distractors"),
    ],
)
def test_explanation_figures_reject_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call(make_result())


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def comparison_frame(**overrides):
    columns = {
        "model": ["base", "se", "cbam", "pam", "gc"],
        "module": [None, "se", "cbam", "pam", "gc"],
        "backbone": ["small_cnn"] * 5,
        "test_accuracy": [0.98123, 0.9845, 0.98714, 0.9803, 0.985],
        # Their 95% intervals, uneven on purpose: the error bars must not be symmetric guesses.
        "test_accuracy_low": [0.9760, 0.9800, 0.98301, 0.9750, 0.9805],
        "test_accuracy_high": [0.9855, 0.9880, 0.99024, 0.9850, 0.9885],
        "test_loss": [0.061, 0.05, 0.045, 0.07, 0.05],
        "parameters": [1234567, 1250000, 1260000, 1300000, 1240000],
        # A timing the figure must leave out: a rerun would redraw it differently.
        "inference_ms_per_image": [0.4123, 0.45, 0.5104, 0.62, 0.44],
    }
    columns.update(overrides)
    return pd.DataFrame(columns)


def table_rows(figure) -> list[list[str]]:
    (axis,) = [axis for axis in figure.axes if axis.get_label() == "table"]
    cells = axis.tables[0].get_celld()
    rows = max(row for row, _ in cells) + 1
    columns = max(column for _, column in cells) + 1
    return [[cells[row, column].get_text().get_text() for column in range(columns)]
            for row in range(rows)]


def test_comparison_table_formats_every_column_and_highlights_the_best(tmp_path):
    figure = plot_comparison_table(comparison_frame())
    assert labels_of(figure) == ["table", "test_accuracy", "parameters"]
    header, *rows = table_rows(figure)
    assert header == ["model", "module", "backbone", "test accuracy", "95% interval low",
                      "95% interval high", "test loss", "parameters"]
    assert rows[2] == [
        "cbam", "cbam", "small_cnn", "0.9871", "0.9830", "0.9902", "0.0450", "1,260,000"
    ]
    assert rows[0][:2] == ["base", "n/a"] and rows[0][7:] == ["1,234,567"]
    # The best accuracy (cbam, row 3 counting the header) is the only highlighted row.
    cells = figure.axes[0].tables[0].get_celld()
    backgrounds = {row: cells[row, 3].get_facecolor() for row in range(1, 6)}
    assert backgrounds[3] != backgrounds[1] and len({backgrounds[row] for row in (1, 2, 4, 5)}) == 1
    assert cells[3, 0].get_text().get_fontweight() == "bold"
    assert "cbam" in figure.get_suptitle()
    green = matplotlib.colors.to_rgba(SUCCESS_COLOR)
    for axis in figure.axes[1:]:
        assert [label.get_text() for label in axis.get_yticklabels()] == [
            "base", "se", "cbam", "pam", "gc"
        ]
        assert [patch.get_facecolor() == green for patch in axis.patches] == [
            False, False, True, False, False
        ]
    (parameters_axis,) = [axis for axis in figure.axes if axis.get_label() == "parameters"]
    assert "1,300,000" in [text.get_text() for text in parameters_axis.texts]
    path = tmp_path / "attention_comparison.png"
    save_figure(figure, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert_png(path)


def bar_container(figure, label) -> BarContainer:
    (axis,) = [axis for axis in figure.axes if axis.get_label() == label]
    (bars,) = [container for container in axis.containers if isinstance(container, BarContainer)]
    return bars


def test_comparison_accuracy_bars_carry_the_95_percent_interval_as_error_bars():
    frame = comparison_frame()
    figure = plot_comparison_table(frame)
    errorbar = bar_container(figure, "test_accuracy").errorbar
    assert errorbar is not None
    _, _, (lines, *others) = errorbar.lines
    assert not others and isinstance(lines, LineCollection)
    # One horizontal segment per model, from its interval's low end to its high end.
    segments = [np.asarray(segment) for segment in lines.get_segments()]
    assert len(segments) == len(frame)
    for segment, low, high in zip(segments, frame["test_accuracy_low"],
                                  frame["test_accuracy_high"], strict=True):
        assert sorted(segment[:, 0]) == pytest.approx([low, high])
        assert segment[0, 1] == segment[1, 1]
    # The other charts have no interval to show.
    assert bar_container(figure, "parameters").errorbar is None


def test_comparison_table_shows_missing_values_as_not_available():
    frame = comparison_frame(test_accuracy=[float("nan")] * 5, parameters=[None] * 5)
    figure = plot_comparison_table(frame)
    _, *rows = table_rows(figure)
    assert all(row[3] == "n/a" and row[7] == "n/a" for row in rows)
    # No accuracy, so no model is highlighted.
    assert not any(
        patch.get_facecolor() == matplotlib.colors.to_rgba(SUCCESS_COLOR)
        for axis in figure.axes[1:] for patch in axis.patches
    )


def test_comparison_table_rejects_missing_columns_empty_frames_and_text():
    frame = comparison_frame()
    with pytest.raises(ValueError, match=r"\['backbone', 'parameters'\]"):
        plot_comparison_table(frame.drop(columns=["parameters", "backbone"]))
    with pytest.raises(ValueError, match=r"\['test_accuracy_low', 'test_accuracy_high'\]"):
        plot_comparison_table(frame.drop(columns=["test_accuracy_high", "test_accuracy_low"]))
    with pytest.raises(ValueError, match="no rows"):
        plot_comparison_table(frame.iloc[:0])
    with pytest.raises(ValueError, match="test_loss"):
        plot_comparison_table(comparison_frame(test_loss=["low"] * 5))


def test_comparison_table_can_mark_the_best_model_by_another_column():
    frame = comparison_frame(val_accuracy=[0.97, 0.99, 0.98, 0.96, 0.95])
    figure = plot_comparison_table(frame, best_by="val_accuracy")
    header, *rows = table_rows(figure)
    assert header[-1] == "val accuracy" and [row[-1] for row in rows][:2] == ["0.97", "0.99"]
    assert figure.get_suptitle().endswith("(best val accuracy: se)")
    cells = figure.axes[0].tables[0].get_celld()
    assert cells[2, 0].get_text().get_fontweight() == "bold"
    assert cells[3, 0].get_text().get_fontweight() != "bold"
    with pytest.raises(ValueError, match="val_loss"):
        plot_comparison_table(frame, best_by="val_loss")


def half_attention_maps(count=3, size=8):
    """Attention 1 on the left half of every image, 0 on the right half."""
    maps = np.zeros((count, size, size), dtype=np.float32)
    maps[:, :, : size // 2] = 1.0
    return maps


def attention_images(count=3, size=8, channels=1):
    return np.full((count, size, size, channels), 0.5, dtype=np.float32)


def axes_labelled(figure, label):
    return [axis for axis in figure.axes if axis.get_label() == label]


@pytest.mark.parametrize("channels", [1, 3])
def test_attention_maps_draw_one_row_per_image_and_one_panel_per_layer(tmp_path, channels):
    images = attention_images(channels=channels)
    maps = {"se": half_attention_maps(), "cbam": 1.0 - half_attention_maps()}
    figure = plot_attention_maps(images, maps, titles=["7", "1", "4"], max_images=2)
    # 2 rows of image + 2 layers, plus one shared colour bar.
    assert len(figure.axes) == 2 * 3 + 1
    assert [axis.get_title() for axis in axes_labelled(figure, "image")] == ["7", "1"]
    assert [axis.get_title() for axis in axes_labelled(figure, "attention")] == [
        "se", "cbam", "se", "cbam"
    ]
    se_overlay = np.asarray(axes_labelled(figure, "attention")[0].images[0].get_array())
    assert se_overlay.shape == (8, 8, 3)
    np.testing.assert_allclose(se_overlay, attention_overlay(images[0], maps["se"][0]))
    # Where the map is high the overlay differs from where it is low, and is brighter (inferno).
    high, low = se_overlay[4, 1], se_overlay[4, 6]
    assert np.abs(high - low).max() > 0.2 and high.mean() > low.mean()
    cbam_overlay = np.asarray(axes_labelled(figure, "attention")[1].images[0].get_array())
    np.testing.assert_allclose(cbam_overlay[4, 1], low, atol=1e-6)
    path = tmp_path / "attention.png"
    save_figure(figure, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_attention_maps_with_counterfactuals_show_where_attention_moved():
    images = attention_images()
    maps = half_attention_maps()
    moved = {"se": maps[..., ::-1], "cbam": maps}
    figure = plot_attention_maps(
        images, {"se": maps, "cbam": maps}, counterfactuals=images * 0.5,
        counterfactual_maps=moved,
    )
    assert len(figure.axes) == 3 * 6 + 1
    assert len(axes_labelled(figure, "counterfactual")) == 3
    titles = [axis.get_title() for axis in axes_labelled(figure, "counterfactual attention")]
    assert titles[:2] == [
        "se (counterfactual)\nmean change 1.00", "cbam (counterfactual)\nmean change 0.00"
    ]
    counterfactual_overlay = axes_labelled(figure, "counterfactual attention")[0].images[0]
    np.testing.assert_allclose(
        counterfactual_overlay.get_array(),
        attention_overlay(images[0] * 0.5, moved["se"][0]),
    )
    # The image columns come first in every row, then the counterfactual columns.
    assert labels_of(figure)[:6] == ["image", "attention", "attention", "counterfactual",
                                      "counterfactual attention", "counterfactual attention"]


def test_attention_overlay_blends_the_colormap_over_the_image():
    rgb = np.random.default_rng(4).uniform(0, 1, (5, 6, 3)).astype(np.float32)
    attention = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_allclose(attention_overlay(rgb, attention, opacity=0.0), rgb)
    pure = attention_overlay(rgb, attention, colormap="jet", opacity=1.0)
    np.testing.assert_allclose(pure, matplotlib.colormaps["jet"](attention)[..., :3], atol=1e-6)
    grey = attention_overlay(np.full((5, 6, 1), 0.2), attention, opacity=0.0)
    np.testing.assert_allclose(grey, 0.2, atol=1e-6)
    with pytest.raises(ValueError, match="attention_map"):
        attention_overlay(rgb, attention.T)
    with pytest.raises(ValueError, match="opacity"):
        attention_overlay(rgb, attention, opacity=1.5)
    with pytest.raises(ValueError, match="colormap"):
        attention_overlay(rgb, attention, colormap="no-such-map")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"images": np.zeros((3, 8, 8))}, "images"),
        ({"images": np.zeros((3, 8, 8, 2))}, "images"),
        ({"maps": {"se": np.zeros((3, 4, 4))}}, r"maps\['se'\]"),
        ({"maps": {"se": np.zeros((2, 8, 8))}}, r"maps\['se'\]"),
        ({"maps": {"se": np.full((3, 8, 8), np.nan)}}, r"maps\['se'\]"),
        ({"maps": {}}, "maps"),
        ({"titles": ["only one"]}, "titles"),
        ({"max_images": 0}, "max_images"),
        ({"counterfactuals": np.zeros((3, 8, 8, 1))}, "counterfactual_maps"),
        ({"counterfactuals": np.zeros((3, 4, 4, 1)),
          "counterfactual_maps": {"se": np.zeros((3, 8, 8))}}, "counterfactuals has shape"),
        ({"counterfactuals": np.zeros((3, 8, 8, 1)),
          "counterfactual_maps": {"cbam": np.zeros((3, 8, 8))}}, "counterfactual_maps has layers"),
        ({"counterfactuals": np.zeros((3, 8, 8, 1)),
          "counterfactual_maps": {"se": np.zeros((3, 8, 7))}}, r"counterfactual_maps\['se'\]"),
    ],
)
def test_attention_maps_reject_bad_arguments(arguments, message):
    call = {"images": attention_images(), "maps": {"se": half_attention_maps()}} | arguments
    images, maps = call.pop("images"), call.pop("maps")
    with pytest.raises(ValueError, match=message):
        plot_attention_maps(images, maps, **call)


def test_importing_one_plots_module_imports_no_other():
    # The stages depend on whole folders; a training stage that draws its history must not
    # import (and so depend on) the counterfactual figures, which need the explanation code.
    code = ("import sys, pixelflip.plots.training; "
            "print(sorted(m for m in sys.modules if m.startswith('pixelflip.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert "pixelflip.plots.training" in loaded and "pixelflip.plots.common" in loaded
    assert "pixelflip.plots.counterfactuals" not in loaded
    assert "pixelflip.counterfactuals" not in loaded
