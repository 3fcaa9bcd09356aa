"""Several counterfactual methods on the same images, side by side.

"Pixel against region counterfactuals on the same photos": one row per image, the original and
then each method's counterfactual with the pixels it changed outlined, so a reader sees at a
glance that one method spreads a haze over the whole image and another replaces a few regions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from pixelflip.plots.changes import (
    _distractors_to_draw,
    _draw_changes,
    _draw_distractor,
    describe_changed_regions,
)
from pixelflip.plots.common import (
    FAILURE_COLOR,
    _check_image,
    _draw_image,
    _new_figure,
)
from pixelflip.plots.counterfactuals import _color_by_success, _name, _rows_to_draw

# A failed search returns the original; it is drawn faded so the row does not read as a success.
_FAILED_ALPHA = 0.35


def plot_method_comparison(
    results: Mapping[str, object],
    class_names: Sequence[str] | None,
    *,
    rows: int = 4,
    title: str | None = None,
    distractors: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """One row per image: the original, then every method's counterfactual, changes outlined.

    Parameters
    ----------
    results : mapping of method name -> CounterfactualResult
        Counterfactuals of the same N images (same originals in the same order, the same
        original predictions) by each method; columns follow the mapping's order. Images have
        shape (H, W, C), C in {1, 3}, pixels in [0, 1].
    class_names : sequence of K str, or None
        Names of the classes (None: indices).
    rows : int >= 1, default 4
        Images drawn: the first ``rows`` (fewer if the results hold fewer).
    title : str, optional
        Figure title; default "counterfactuals of <methods>".
    distractors : mapping of method name -> array of shape (N, H, W, C), optional
        For a method of ``results`` that pasted regions of real images, those images (row i the
        one ``results[name].distractor_indices[i]`` names, pixels in [0, 1]). A "distractor"
        column follows that method's column when some drawn image has a distractor; images
        without one show an empty panel saying "none".

    The original's caption gives its predicted label and probability; each counterfactual's
    ``"<method>: <label> p=0.93"`` over ``"area 8% · 3 regions"`` (share of pixels in its
    ``masks`` and 8-connected regions of them), green, or ``"<method>: no counterfactual"`` in
    red over the faded original where that image's search failed. Axes are labelled
    ``original``, ``counterfactual`` and ``distractor``; the latter two carry the method as gid.
    """
    methods = _check_results(results)
    first = results[methods[0]]
    count = _rows_to_draw(first, class_names, rows, name="rows")
    shown = _check_distractors(distractors, results, range(count))
    columns = 1 + len(methods) + len(shown)
    figure = _new_figure(figsize=(2.7 * columns, 2.9 * count + 0.4))
    axes = np.asarray(figure.subplots(count, columns)).reshape(count, columns)
    for row, axes_row in enumerate(axes):
        panels = iter(axes_row)
        prediction = int(first.original_predictions[row])
        probability = first.original_probabilities[row, prediction]
        _draw_image(next(panels), _check_image("original", first.originals[row]),
                    f"#{row} original: {_name(prediction, class_names)} p={probability:.2f}",
                    label="original")
        for method in methods:
            _draw_counterfactual(next(panels), results[method], row, method, class_names)
            if method in shown:
                result = results[method]
                axis = next(panels)
                _draw_distractor(axis, shown[method][row],
                                 int(result.distractor_indices[row]), result.masks[row])
                axis.set_gid(method)
    figure.suptitle(title or f"counterfactuals of {', '.join(map(str, methods))}")
    return figure


def _draw_counterfactual(axis, result, row: int, method: str, class_names) -> None:
    if not result.success[row]:
        _draw_image(axis, result.counterfactuals[row], f"{method}: no counterfactual",
                    label="counterfactual")
        axis.images[0].set_alpha(_FAILED_ALPHA)
        axis.title.set_color(FAILURE_COLOR)
    else:
        prediction = int(result.counterfactual_predictions[row])
        probability = result.counterfactual_probabilities[row, prediction]
        caption = (f"{method}: {_name(prediction, class_names)} p={probability:.2f}\n"
                   f"{describe_changed_regions(result.masks[row])}")
        _draw_image(axis, result.counterfactuals[row], caption, label="counterfactual")
        _draw_changes(axis, result.masks[row])
        _color_by_success(axis, result, row)
    axis.set_gid(method)


def _check_results(results) -> list[str]:
    """The method names of ``results``; ValueError unless they are results of the same images."""
    from pixelflip.counterfactuals.result import CounterfactualResult

    if not isinstance(results, Mapping) or not results:
        raise ValueError("results is empty or not a mapping; expected {method name: "
                         "CounterfactualResult} with at least one entry.")
    methods = list(results)
    first_method = methods[0]
    first = results[first_method]
    for method, result in results.items():
        if not isinstance(result, CounterfactualResult):
            raise ValueError(f"results[{method!r}] is a {type(result).__name__}; expected a "
                             "CounterfactualResult.")
        same = (result.originals.shape == first.originals.shape
                and result.num_classes == first.num_classes
                and np.array_equal(result.originals, first.originals)
                and np.array_equal(result.original_predictions, first.original_predictions))
        if not same:
            # Side by side only means something on the same images, predicted the same way.
            raise ValueError(
                f"results[{method!r}] holds other images than results[{first_method!r}] (shape "
                f"{result.originals.shape} against {first.originals.shape}, or other pixels, "
                "class count or original predictions); expected counterfactuals of the same "
                "images in the same order."
            )
    return methods


def _check_distractors(distractors, results, rows) -> dict[str, np.ndarray]:
    """The distractor images to draw, by method (only methods with a distractor in ``rows``)."""
    if distractors is None:
        return {}
    if not isinstance(distractors, Mapping):
        raise ValueError(f"distractors is a {type(distractors).__name__}; expected a mapping "
                         "{method name: (N, H, W, C) images}.")
    unknown = sorted(str(method) for method in distractors if method not in results)
    if unknown:
        raise ValueError(f"distractors names methods {unknown} that are not in results; "
                         f"expected some of {list(results)}.")
    shown = {}
    for method, images in distractors.items():
        checked = _distractors_to_draw(f"distractors[{method!r}]", images, results[method], rows)
        if checked is not None:
            shown[method] = checked
    return shown
