"""Counterfactual figures: original, counterfactual and perturbation of one image or a grid.

The explanation row and grid show what a method changed instead: the original with its changed
regions outlined, the counterfactual, the distractor a region method copied from, and Grad-CAM.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from pixelflip.config.checks import check_integer
from pixelflip.plots.changes import (
    _distractors_to_draw,
    _draw_changes,
    _draw_distractor,
    describe_changed_regions,
)
from pixelflip.plots.common import (
    FAILURE_COLOR,
    PERTURBATION_COLORMAP,
    SUCCESS_COLOR,
    _check_attribution_maps,
    _check_image,
    _draw_attribution,
    _draw_image,
    _new_figure,
)


def plot_counterfactual(
    original,
    counterfactual,
    perturbation,
    *,
    original_label: str,
    counterfactual_label: str,
    original_probability: float,
    counterfactual_probability: float,
    title: str | None = None,
) -> Figure:
    """Original, counterfactual and perturbation heatmap of one image, side by side.

    Parameters
    ----------
    original, counterfactual, perturbation : arrays of shape (H, W, C), C in {1, 3}
        Images with pixels in [0, 1] and their difference (counterfactual - original). Greyscale
        images are drawn in grey, RGB in colour. The heatmap shows the channel-mean change on a
        diverging scale centred at 0: red pixels became brighter, blue darker.
    original_label, counterfactual_label : str
        Predicted class names, shown in the titles with their probabilities.
    original_probability, counterfactual_probability : float
    title : str, optional
        Figure title.
    """
    figure = _new_figure(figsize=(9.0, 3.2))
    axes = figure.subplots(1, 3)
    _draw_triplet(
        figure,
        axes,
        original,
        counterfactual,
        perturbation,
        original_title=f"original: {original_label} ({original_probability:.2f})",
        counterfactual_title=f"counterfactual: {counterfactual_label} "
        f"({counterfactual_probability:.2f})",
    )
    if title:
        figure.suptitle(title)
    return figure


def plot_counterfactual_grid(
    result, class_names: Sequence[str] | None, *, max_images: int = 8
) -> Figure:
    """One row per image of a :class:`~pixelflip.counterfactuals.result.CounterfactualResult`.

    Columns are original, counterfactual and perturbation as in :func:`plot_counterfactual`.
    Titles give the predicted classes (named by ``class_names``, or by index when None), their
    probabilities and the target; the counterfactual title is green with "flipped" for a
    success and red with "failed" otherwise. Shows the first ``max_images`` images.
    """
    rows = _rows_to_draw(result, class_names, max_images, name="max_images")
    figure = _new_figure(figsize=(9.0, 2.9 * rows))
    axes = np.asarray(figure.subplots(rows, 3)).reshape(rows, 3)
    for row in range(rows):
        original_title, counterfactual_title = _result_titles(result, row, class_names)
        _draw_triplet(
            figure,
            axes[row],
            result.originals[row],
            result.counterfactuals[row],
            result.perturbations[row],
            original_title=original_title,
            counterfactual_title=counterfactual_title,
        )
        _color_by_success(axes[row, 1], result, row)
    figure.suptitle(f"{result.method} counterfactuals ({rows} of {len(result)})")
    return figure


def plot_explanation_row(
    result,
    attribution_maps,
    class_names: Sequence[str] | None,
    *,
    index: int = 0,
    title: str | None = None,
    distractors: np.ndarray | None = None,
) -> Figure:
    """The panels of :func:`plot_explanation_grid` for image ``index`` (from 0) of ``result``.

    ``distractors`` is as for the grid, (N, H, W, C) for all N images of ``result``; the
    distractor column appears when image ``index`` has one.
    """
    _check_result_and_names(result, class_names)
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not (
        0 <= index < len(result)
    ):
        raise ValueError(
            f"index={index!r} is invalid; expected an integer in 0..{len(result) - 1}."
        )
    return _explanation_figure(result, attribution_maps, class_names, [int(index)], title,
                               distractors)


def plot_explanation_grid(
    result,
    attribution_maps,
    class_names: Sequence[str] | None,
    *,
    rows: int = 4,
    title: str | None = None,
    distractors: np.ndarray | None = None,
) -> Figure:
    """The research figure: one row per image, what changed and what the model says about it.

    Columns: Original | Changed regions outlined | Counterfactual | Distractor | Grad-CAM, the
    last two only when there is something to show.

    Parameters
    ----------
    result : CounterfactualResult
        Images of shape (H, W, C), C in {1, 3}, pixels in [0, 1]. Its ``masks`` (N, H, W) are
        outlined (cyan edged in black) over the original and the counterfactual; the
        changed-regions panel is captioned with the share of pixels changed and the number of
        8-connected changed regions, so a pixel method's haze reads "area 97% · 1 region" and a
        region method "area 8% · 3 regions".
    attribution_maps : array of shape (N, h, w) or (N, h, w, 1), or None
        One attribution (Grad-CAM) map per image of ``result``, at any resolution: it is
        stretched over the image and drawn in "jet" from min(0, map minimum) to its maximum,
        half transparent over the greyscale original. None leaves the Grad-CAM column out.
    class_names : sequence of K str, or None
        Names of the classes (None: indices). Titles give the original and counterfactual
        predictions with their probabilities; the counterfactual title says "flipped" in green
        or "failed" in red.
    rows : int >= 1, default 4
        Images drawn: the first ``rows`` of ``result`` (fewer if it holds fewer).
    title : str, optional
        Figure title, for example the model and method; default "<method> counterfactuals".
    distractors : array of shape (N, H, W, C), pixels in [0, 1], optional
        Row i is the image ``result.distractor_indices[i]`` names (the caller looks them up;
        rows whose index is -1 are ignored). The distractor column, with the copied regions
        outlined, appears only when this is given and some drawn image has a distractor; a
        drawn image without one shows an empty panel saying "none".

    Axes carry the labels ``original``, ``changed``, ``counterfactual``, ``distractor`` and
    ``attribution`` for callers and tests.
    """
    count = _rows_to_draw(result, class_names, rows, name="rows")
    return _explanation_figure(result, attribution_maps, class_names, range(count), title,
                               distractors)


def _name(index: int, class_names: Sequence[str] | None) -> str:
    return str(class_names[index]) if class_names is not None else str(index)


def _rows_to_draw(result, class_names, wanted, *, name: str) -> int:
    wanted = check_integer(name, wanted, minimum=1)
    _check_result_and_names(result, class_names)
    return min(len(result), wanted)


def _check_result_and_names(result, class_names) -> None:
    if len(result) == 0:
        raise ValueError("result holds no images; expected at least one counterfactual to plot.")
    if class_names is not None and len(class_names) != result.num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} entries; expected {result.num_classes}, one per "
            "class."
        )


def _result_titles(result, row: int, class_names) -> tuple[str, str]:
    """Titles of image ``row``'s original and counterfactual panels."""
    from pixelflip.counterfactuals.result import target_label

    before = int(result.original_predictions[row])
    after = int(result.counterfactual_predictions[row])
    target = target_label(int(result.targets[row]), class_names)
    outcome = "flipped" if result.success[row] else "failed"
    before_probability = result.original_probabilities[row, before]
    after_probability = result.counterfactual_probabilities[row, after]
    original_title = f"#{row} original: {_name(before, class_names)} ({before_probability:.2f})"
    counterfactual_title = (
        f"counterfactual: {_name(after, class_names)} ({after_probability:.2f})\n"
        f"target {target}: {outcome}"
    )
    return original_title, counterfactual_title


def _color_by_success(axis, result, row: int) -> None:
    axis.title.set_color(SUCCESS_COLOR if result.success[row] else FAILURE_COLOR)


def _explanation_figure(result, attribution_maps, class_names, rows, title,
                        distractors) -> Figure:
    rows = list(rows)
    if attribution_maps is not None:
        attribution_maps = _check_attribution_maps("attribution_maps", attribution_maps,
                                                   len(result))
    distractors = _distractors_to_draw("distractors", distractors, result, rows)
    columns = 3 + (distractors is not None) + (attribution_maps is not None)
    figure = _new_figure(figsize=(2.7 * columns, 2.9 * len(rows) + 0.4))
    axes = np.asarray(figure.subplots(len(rows), columns)).reshape(len(rows), columns)
    for axes_row, row in zip(axes, rows):
        original_title, counterfactual_title = _result_titles(result, row, class_names)
        original = _check_image("original", result.originals[row])
        mask = result.masks[row]
        panels = iter(axes_row)
        _draw_image(next(panels), original, original_title, label="original")
        changed_axis = next(panels)
        _draw_image(changed_axis, original, f"changed: {describe_changed_regions(mask)}",
                    label="changed")
        _draw_changes(changed_axis, mask)
        counterfactual_axis = next(panels)
        _draw_image(counterfactual_axis, result.counterfactuals[row], counterfactual_title,
                    label="counterfactual")
        _draw_changes(counterfactual_axis, mask)
        _color_by_success(counterfactual_axis, result, row)
        if distractors is not None:
            _draw_distractor(next(panels), distractors[row],
                             int(result.distractor_indices[row]), mask)
        if attribution_maps is not None:
            _draw_attribution(next(panels), original, attribution_maps[row], title="Grad-CAM",
                              label="attribution")
    figure.suptitle(title or f"{result.method} counterfactuals")
    return figure


def _draw_triplet(figure, axes, original, counterfactual, perturbation, *, original_title,
                  counterfactual_title) -> None:
    original = _check_image("original", original)
    counterfactual, perturbation = (
        np.asarray(array, dtype=np.float32) for array in (counterfactual, perturbation)
    )
    for name, array in (("counterfactual", counterfactual), ("perturbation", perturbation)):
        if array.shape != original.shape:
            raise ValueError(
                f"{name} has shape {array.shape}; expected {original.shape}, the original's."
            )
    _draw_image(axes[0], original, original_title)
    _draw_image(axes[1], counterfactual, counterfactual_title)

    change = perturbation.mean(axis=-1)
    limit = float(np.abs(change).max()) or 1.0
    heatmap = axes[2].imshow(
        change, cmap=PERTURBATION_COLORMAP, norm=Normalize(vmin=-limit, vmax=limit)
    )
    axes[2].set_title("perturbation (red brighter, blue darker)", fontsize=9)
    # A label lets tests and callers find the heatmap among the axes.
    axes[2].set_label("perturbation")
    figure.colorbar(heatmap, ax=axes[2], fraction=0.046, pad=0.04)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
