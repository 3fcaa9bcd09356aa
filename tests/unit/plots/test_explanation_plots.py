"""Attribution maps of several methods over their images, and grouped explanation-metric bars."""

from __future__ import annotations

import matplotlib.colors
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from pixelflip import plots
from pixelflip.plots.common import save_figure
from pixelflip.plots.explanations import plot_attribution_maps, plot_explanation_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASS_NAMES = ["cat", "dog", "bird"]


def attribution_images(count=4, size=16, channels=1):
    return np.random.default_rng(0).uniform(0, 1, (count, size, size, channels)).astype(
        np.float32
    )


def coarse_maps(count=4, size=4):
    """A late feature map's resolution: the top-left cell hot, the rest cold."""
    maps = np.zeros((count, size, size), dtype=np.float32)
    maps[:, 0, 0] = 1.0
    return maps


def axes_labelled(figure, label):
    return [axis for axis in figure.axes if axis.get_label() == label]


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5_000
    pixels = matplotlib.image.imread(path)
    # Not a blank canvas: the figure has many distinct colours.
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20
    return pixels


@pytest.mark.parametrize("channels", [1, 3])
def test_attribution_maps_draw_one_row_per_image_and_one_overlay_per_method(tmp_path, channels):
    images = attribution_images(channels=channels)
    full_resolution = np.random.default_rng(1).uniform(0, 1, (4, 16, 16))
    maps = {"grad_cam": coarse_maps(), "lime": full_resolution[..., None]}
    figure = plot_attribution_maps(
        images, maps, class_names=CLASS_NAMES, predictions=np.array([2, 0, 1, 1]),
        max_images=3, title="base",
    )
    assert len(figure.axes) == 3 * 3
    assert [axis.get_label() for axis in figure.axes] == ["image", "attribution", "attribution"] * 3
    assert [axis.get_gid() for axis in axes_labelled(figure, "attribution")] == [
        "grad_cam", "lime"
    ] * 3
    # Column titles on the first row only, predicted classes as row labels.
    assert [axis.get_title() for axis in figure.axes[:3]] == ["image", "grad_cam", "lime"]
    assert all(axis.get_title() == "" for axis in figure.axes[3:])
    assert [axis.get_ylabel() for axis in axes_labelled(figure, "image")] == [
        "#0: bird", "#1: cat", "#2: dog"
    ]
    assert figure.get_suptitle() == "base"
    # The image panel shows the image itself (grey or colour), the overlay panel its grey version.
    first_image = figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.squeeze(first_image), np.squeeze(images[0]), atol=1e-6)
    grey, heat = figure.axes[4].images
    np.testing.assert_allclose(grey.get_array(), images[1].mean(axis=-1), atol=1e-6)
    assert grey.get_cmap().name == "gray"
    assert heat.get_cmap().name == "jet" and heat.get_alpha() == pytest.approx(0.45)
    np.testing.assert_allclose(heat.get_array(), maps["grad_cam"][1])
    lime_heat = figure.axes[5].images[1]
    np.testing.assert_allclose(lime_heat.get_array(), full_resolution[1], atol=1e-6)
    path = tmp_path / "attributions.png"
    save_figure(figure, path)
    assert_png(path)


def test_low_resolution_maps_are_stretched_over_the_whole_image():
    images = attribution_images(count=2, size=20)
    figure = plot_attribution_maps(images, {"grad_cam": coarse_maps(count=2, size=5)})
    grey, heat = axes_labelled(figure, "attribution")[0].images
    assert heat.get_array().shape == (5, 5)
    assert heat.get_extent() == [-0.5, 19.5, 19.5, -0.5]
    # Once drawn, the 5 x 5 map covers exactly the pixels of the 20 x 20 image.
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    np.testing.assert_allclose(
        heat.get_window_extent(renderer).bounds, grey.get_window_extent(renderer).bounds
    )
    # The hot cell is drawn in the image's top-left corner: red end of jet, the rest blue.
    colours = heat.to_rgba(heat.get_array())[..., :3]
    assert colours[0, 0, 0] > 0.4 and colours[0, 0, 2] < 0.1
    assert colours[4, 4, 2] > 0.4 and colours[4, 4, 0] < 0.1
    # Without predictions rows are numbered; the default title names the figure.
    assert [axis.get_ylabel() for axis in axes_labelled(figure, "image")] == ["#0", "#1"]
    assert figure.get_suptitle() == "attribution maps"


def test_attribution_maps_take_an_attribution_result_and_name_classes_by_index():
    from pixelflip.attributions.result import AttributionResult

    maps = coarse_maps(count=3)
    result = AttributionResult("score_cam", maps, np.zeros(3, dtype=int), np.full(3, 0.01))
    figure = plot_attribution_maps(
        attribution_images(count=3), {result.method: result}, predictions=[1, 0, 2]
    )
    assert [axis.get_gid() for axis in axes_labelled(figure, "attribution")] == ["score_cam"] * 3
    assert [axis.get_ylabel() for axis in axes_labelled(figure, "image")] == [
        "#0: 1", "#1: 0", "#2: 2"
    ]
    np.testing.assert_allclose(axes_labelled(figure, "attribution")[2].images[1].get_array(),
                               maps[2])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"images": np.zeros((4, 16, 16))}, "images"),
        ({"images": np.zeros((4, 16, 16, 2))}, "images"),
        ({"maps_by_method": {}}, "maps_by_method is empty"),
        ({"maps_by_method": {"lime": np.zeros((3, 4, 4))}}, r"maps_by_method\['lime'\]"),
        ({"maps_by_method": {"lime": np.zeros((4, 4))}}, r"maps_by_method\['lime'\]"),
        ({"maps_by_method": {"lime": np.full((4, 4, 4), np.nan)}}, r"maps_by_method\['lime'\]"),
        ({"predictions": [0, 1]}, "predictions"),
        ({"predictions": [0, 1, 2, 3], "class_names": CLASS_NAMES}, r"0\.\.2"),
        ({"predictions": [0.0, 1.0, 2.0, 1.0]}, "predictions"),
        ({"class_names": CLASS_NAMES}, "class_names was given without predictions"),
        ({"max_images": 0}, "max_images"),
    ],
)
def test_attribution_maps_reject_bad_arguments(arguments, message):
    call = {"images": attribution_images(), "maps_by_method": {"grad_cam": coarse_maps()}}
    call |= arguments
    images, maps = call.pop("images"), call.pop("maps_by_method")
    with pytest.raises(ValueError, match=message):
        plot_attribution_maps(images, maps, **call)


def attribution_metric_table():
    """Two models by three methods, one value missing (NaN), one None, one pair without a row."""
    return pd.DataFrame({
        "model": ["base", "base", "base", "cbam", "cbam"],
        "method": ["grad_cam", "lime", "score_cam", "grad_cam", "lime"],
        "mean_deletion_auc": [0.123, 0.2, float("nan"), 0.15, 0.31],
        "mean_insertion_auc": [0.8, None, 0.7, 0.75, 0.66],
    })


def bar_heights(axis) -> np.ndarray:
    return np.array([patch.get_height() for patch in axis.patches])


def test_explanation_metrics_draw_grouped_bars_with_values_and_empty_missing_bars(tmp_path):
    metrics = ["mean_deletion_auc", "mean_insertion_auc"]
    figure = plot_explanation_metrics(
        attribution_metric_table(), metrics=metrics, title="attribution metrics"
    )
    assert [axis.get_label() for axis in figure.axes] == metrics
    deletion, insertion = figure.axes
    assert [axis.get_title() for axis in figure.axes] == ["mean deletion auc",
                                                           "mean insertion auc"]
    for axis in figure.axes:
        assert [label.get_text() for label in axis.get_xticklabels()] == ["base", "cbam"]
    # Bars go method by method (grad_cam, lime, score_cam), each over both models.
    np.testing.assert_allclose(bar_heights(deletion), [0.123, 0.15, 0.2, 0.31, 0.0, 0.0])
    np.testing.assert_allclose(bar_heights(insertion), [0.8, 0.75, 0.0, 0.66, 0.7, 0.0])
    assert [text.get_text() for text in deletion.texts] == [
        "0.123", "0.15", "0.2", "0.31", "n/a", "n/a"
    ]
    assert [text.get_text() for text in insertion.texts].count("n/a") == 2
    # Within a group the bars stand side by side, left to right in method order.
    positions = np.array([patch.get_x() for patch in deletion.patches]).reshape(3, 2)
    assert (np.diff(positions, axis=0) > 0).all() and (positions[:, 1] > positions[:, 0]).all()
    # One colour per method, the same in both panels, named by a single legend.
    colours = [[matplotlib.colors.to_hex(patch.get_facecolor()) for patch in axis.patches]
               for axis in figure.axes]
    assert colours[0] == colours[1] and len(set(colours[0])) == 3
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["grad_cam", "lime", "score_cam"]
    assert legend.get_title().get_text() == "method"
    assert figure.get_suptitle() == "attribution metrics"
    path = tmp_path / "metrics" / "attribution_metrics.png"
    save_figure(figure, path)
    assert_png(path)


def test_explanation_metrics_wrap_panels_and_survive_an_all_missing_metric():
    table = pd.DataFrame({
        "model": ["base", "se", "base", "se"],
        "method": ["elastic_net", "elastic_net", "gradient", "gradient"],
        "validity": [1.0, 0.9, 0.8, 1.0],
        "median_l1": [12.5, 10.0, 30.25, 28.0],
        "median_l0": [784, 700, 650, 640],
        "median_seconds": [None, None, None, None],
    })
    metrics = ["validity", "median_l1", "median_l0", "median_seconds"]
    figure = plot_explanation_metrics(table, metrics=metrics)
    assert [axis.get_label() for axis in figure.axes] == metrics
    # Three panels per row: the fourth starts a second row.
    spans = [axis.get_subplotspec().rowspan.start for axis in figure.axes]
    assert spans == [0, 0, 0, 1]
    seconds = figure.axes[3]
    np.testing.assert_allclose(bar_heights(seconds), 0.0)
    assert {text.get_text() for text in seconds.texts} == {"n/a"}
    assert "784" in [text.get_text() for text in figure.axes[2].texts]
    assert figure.get_suptitle() == "explanation metrics"
    figure.canvas.draw()  # renders with nothing but NaN in one panel
    # A single metric name is one panel; other columns can serve as group and hue.
    single = plot_explanation_metrics(
        table, metrics="validity", group="method", hue="model"
    )
    (axis,) = single.axes
    assert [label.get_text() for label in axis.get_xticklabels()] == ["elastic_net", "gradient"]
    assert [text.get_text() for text in single.legends[0].get_texts()] == ["base", "se"]


@pytest.mark.parametrize(
    ("table", "arguments", "message"),
    [
        (attribution_metric_table().iloc[:0], {}, "table has no rows"),
        (attribution_metric_table(), {"metrics": ["validity"]}, r"metrics \['validity'\]"),
        (attribution_metric_table(), {"metrics": []}, "metrics is empty"),
        (attribution_metric_table().drop(columns="model"), {}, "group='model'"),
        (attribution_metric_table(), {"hue": "explainer"}, "hue='explainer'"),
        (attribution_metric_table(), {"hue": "model"}, "group and hue"),
        (attribution_metric_table().assign(mean_deletion_auc="low"), {}, "mean_deletion_auc"),
        (pd.concat([attribution_metric_table()] * 2), {}, r"\(model, method\) pair"),
    ],
)
def test_explanation_metrics_reject_bad_arguments(table, arguments, message):
    with pytest.raises(ValueError, match=message):
        plot_explanation_metrics(
            table, **({"metrics": ["mean_deletion_auc"]} | arguments)
        )


def test_explanation_figures_leave_no_open_pyplot_figures(tmp_path):
    from matplotlib import pyplot

    before = pyplot.get_fignums()
    attributions = plot_attribution_maps(
        attribution_images(count=1), {"grad_cam": coarse_maps(count=1)}
    )
    metrics = plot_explanation_metrics(
        attribution_metric_table(), metrics=["mean_deletion_auc"]
    )
    for name, figure in (("attributions", attributions), ("metrics", metrics)):
        save_figure(figure, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE
    assert pyplot.get_fignums() == before


def test_explanation_functions_are_exported_by_the_package():
    from pixelflip.plots import explanations

    public = {
        name for name, value in vars(explanations).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == explanations.__name__
    }
    assert public == {"plot_attribution_maps", "plot_explanation_metrics"}
    # The package only documents its modules (importing one plot module imports no other).
    assert "pixelflip.plots.explanations" in plots.__doc__
