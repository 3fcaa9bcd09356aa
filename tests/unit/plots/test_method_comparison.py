"""Pixel against region counterfactuals of the same images, side by side; the change measure."""

from __future__ import annotations

import dataclasses

import matplotlib.image
import numpy as np
import pytest
from support.hand_made_results import fake_result

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
from pixelflip.plots.method_comparison import plot_method_comparison

DIGITS = [str(digit) for digit in range(10)]
SIZE = 8


def squares_mask():
    """Two separate 2x2 squares on 8x8: 8 of 64 pixels (12.5%), 2 regions."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[2:4, 2:4] = True
    mask[5:7, 5:7] = True
    return mask


def lattice_mask():
    """A pixel method's haze: every other pixel of every other row, 16 isolated pixels (25%)."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[::2, ::2] = True
    return mask


def same_images(channels=1, count=3):
    return np.random.default_rng(0).uniform(0, 1, (count, SIZE, SIZE, channels)).astype(
        np.float32)


def changed(originals, mask):
    """``originals`` with the pixels under ``mask`` (H, W) replaced by 1 - pixel."""
    counterfactuals = originals.copy()
    counterfactuals[:, mask] = 1.0 - counterfactuals[:, mask]
    return counterfactuals


def pixel_and_region_results(channels=1, count=3, distractor_indices=None):
    """The same images predicted 3, flipped to 7 by both methods; the last failed by regions."""
    originals = same_images(channels, count)
    pixel = dataclasses.replace(
        fake_result(originals, changed(originals, lattice_mask()), 3, 7), method="elastic_net")
    success = np.array([True] * (count - 1) + [False])
    counterfactuals = changed(originals, squares_mask())
    counterfactuals[~success] = originals[~success]  # a failed search returns the original
    masks = np.repeat(squares_mask()[None], count, axis=0)
    masks[~success] = False
    region = dataclasses.replace(
        fake_result(originals, counterfactuals, 3, 7, success=success), method="regions",
        masks=masks, distractor_indices=distractor_indices)
    return {"elastic_net": pixel, "regions": region}


def labels_of(figure):
    return [axis.get_label() for axis in figure.axes]


def test_changed_regions_measure_area_and_8_connected_regions():
    assert changed_regions(squares_mask()) == (0.125, 2)
    assert changed_regions(lattice_mask()) == (0.25, 16)
    # Touching at a corner is one region (8-connectivity); an empty mask has none.
    diagonal = np.eye(4, dtype=bool)
    assert changed_regions(diagonal) == (0.25, 1)
    assert changed_regions(np.zeros((3, 5), dtype=bool)) == (0.0, 0)
    assert changed_regions(np.ones((3, 5), dtype=int)) == (1.0, 1)
    assert describe_changed_regions(squares_mask()) == "area 12% · 2 regions"
    assert describe_changed_regions(diagonal) == "area 25% · 1 region"
    # A few changed pixels of a large image must not read as "0%".
    few = np.zeros((100, 100), dtype=bool)
    few[0, :40] = True
    assert describe_changed_regions(few) == "area 0.4% · 1 region"
    few[0, 1:40] = False
    assert describe_changed_regions(few) == "area <0.1% · 1 region"
    for bad in (np.zeros((2, 2, 2), dtype=bool), np.zeros((0, 3), dtype=bool),
                np.full((2, 2), 0.5)):
        with pytest.raises(ValueError, match="mask"):
            changed_regions(bad)


@pytest.mark.parametrize("channels", [1, 3])
def test_each_method_gets_a_column_captioned_with_its_prediction_and_changes(tmp_path, channels):
    results = pixel_and_region_results(channels=channels)
    figure = plot_method_comparison(results, DIGITS, rows=2, title="base · sampled")
    assert labels_of(figure) == ["original", "counterfactual", "counterfactual"] * 2
    assert [axis.get_gid() for axis in figure.axes] == [None, "elastic_net", "regions"] * 2
    titles = [axis.get_title() for axis in figure.axes]
    assert titles[0] == "#0 original: 3 p=0.91" and titles[3] == "#1 original: 3 p=0.91"
    assert titles[1] == "elastic_net: 7 p=0.91\narea 25% · 16 regions"
    assert titles[2] == "regions: 7 p=0.91\narea 12% · 2 regions"
    assert figure.axes[2].title.get_color() == SUCCESS_COLOR
    assert figure.get_suptitle() == "base · sampled"
    # Each panel is that method's counterfactual, its changes outlined over it.
    for axis, method in zip(figure.axes[1:3], ("elastic_net", "regions")):
        np.testing.assert_allclose(np.squeeze(axis.images[0].get_array()),
                                   np.squeeze(results[method].counterfactuals[0]), atol=1e-6)
        assert len(axis.collections) == 1
    vertices = np.concatenate([path.vertices for path in figure.axes[2].collections[0]
                               .get_paths()])
    assert vertices.min() == 1.5 and vertices.max() == 6.5
    image = figure.axes[0].images[0]
    if channels == 1:
        assert image.get_cmap().name == "gray"
    else:
        assert image.get_array().shape == (SIZE, SIZE, 3)
    path = tmp_path / "methods.png"
    save_figure(figure, path)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[1] == round(3 * 2.7 * DPI)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20


def test_a_failed_search_says_no_counterfactual():
    figure = plot_method_comparison(pixel_and_region_results(), None, rows=3)
    assert len(figure.axes) == 3 * 3
    failed = figure.axes[8]
    assert failed.get_title() == "regions: no counterfactual"
    assert failed.title.get_color() == FAILURE_COLOR
    # Faded and without outline: nothing was found, so nothing is marked.
    assert failed.images[0].get_alpha() < 1 and not failed.collections
    # The pixel method did find one for that image; classes are named by index.
    assert figure.axes[7].get_title().startswith("elastic_net: 7 p=0.91")
    assert figure.get_suptitle() == "counterfactuals of elastic_net, regions"


def test_distractors_follow_their_method_and_say_none_where_unused():
    results = pixel_and_region_results(distractor_indices=[4, 9, -1])
    distractors = np.random.default_rng(5).uniform(0, 1, (3, SIZE, SIZE, 1))
    figure = plot_method_comparison(results, DIGITS, rows=3,
                                    distractors={"regions": distractors})
    assert labels_of(figure) == ["original", "counterfactual", "counterfactual",
                                 "distractor"] * 3
    columns = np.array(figure.axes).reshape(3, 4)
    assert [axis.get_gid() for axis in columns[:, 3]] == ["regions"] * 3
    assert columns[0, 3].get_title() == "distractor #4"
    assert columns[1, 3].get_title() == "distractor #9"
    np.testing.assert_allclose(columns[1, 3].images[0].get_array(), distractors[1, ..., 0],
                               atol=1e-6)
    assert len(columns[0, 3].collections) == 1
    assert not columns[2, 3].images and [text.get_text() for text in columns[2, 3].texts] == [
        "none"]
    # No column when none of the drawn images used a distractor.
    only_last = pixel_and_region_results(distractor_indices=[-1, -1, 2])
    figure = plot_method_comparison(only_last, DIGITS, rows=2,
                                    distractors={"regions": distractors})
    assert "distractor" not in labels_of(figure)


def test_comparison_rejects_mismatched_inputs():
    results = pixel_and_region_results(distractor_indices=[4, 9, -1])
    other_images = dict(results)
    other_images["regions"] = dataclasses.replace(
        results["regions"], originals=results["regions"].originals[:, ::-1])
    fewer = dict(results)
    fewer["regions"] = fake_result(same_images()[:2], same_images()[:2], 3, 7)
    other_model = dict(results)
    other_model["regions"] = fake_result(same_images(), same_images(), 5, 7)
    cases = [
        (other_images, {}, r"results\['regions'\] holds other images"),
        (fewer, {}, r"results\['regions'\]"),
        (other_model, {}, r"results\['regions'\]"),
        ({}, {}, "results is empty"),
        ({"elastic_net": results["elastic_net"], "lime": "a map"}, {}, r"results\['lime'\]"),
        (results, {"distractors": {"regions": np.zeros((3, SIZE, SIZE, 3))}},
         r"distractors\['regions'\] has shape"),
        (results, {"distractors": {"regions": np.zeros((2, SIZE, SIZE, 1))}},
         r"distractors\['regions'\]"),
        (results, {"distractors": {"blur": np.zeros((3, SIZE, SIZE, 1))}},
         r"distractors names methods \['blur'\]"),
        (results, {"distractors": np.zeros((3, SIZE, SIZE, 1))}, "distractors is a ndarray"),
        (results, {"rows": 0}, "rows"),
        (results, {"class_names": ["cat", "dog"]}, "class_names"),
    ]
    for given, arguments, message in cases:
        arguments = {"class_names": DIGITS} | arguments
        with pytest.raises(ValueError, match=message):
            plot_method_comparison(given, arguments.pop("class_names"), **arguments)
