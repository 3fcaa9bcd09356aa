"""Explanation figures: attribution maps of several methods side by side, and metric bars.

:func:`plot_attribution_maps` lays each method's map over the image it explains, so Grad-CAM,
Score-CAM, SmoothGrad and LIME can be compared by eye; :func:`plot_explanation_metrics` draws
one grouped bar chart per metric of a table with one row per (model, method), for counterfactual
metrics (validity, median L1 ...) and attribution metrics (deletion and insertion AUC) alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pixelflip.config.checks import check_integer
from pixelflip.plots.attention import _check_batch
from pixelflip.plots.common import (
    _check_attribution_maps,
    _draw_attribution,
    _draw_image,
    _new_figure,
)
from pixelflip.plots.comparison import _format_number

# Metric panels per figure row before the next row starts.
_METRICS_PER_ROW = 3


def plot_attribution_maps(
    images,
    maps_by_method: Mapping[str, np.ndarray],
    *,
    class_names: Sequence[str] | None = None,
    predictions=None,
    max_images: int = 6,
    title: str | None = None,
) -> Figure:
    """One row per image: the image, then each attribution method's map laid over it.

    Parameters
    ----------
    images : array of shape (N, H, W, C), C in {1, 3}, float pixels in [0, 1]
    maps_by_method : mapping of method name -> array of shape (N, h, w), values in [0, 1]
        One map per image, at any resolution ((N, h, w, 1) is accepted too, and so is an
        :class:`~pixelflip.attributions.result.AttributionResult`, whose ``maps`` are used).
        Each map is stretched over its image and drawn in "jet" from min(0, map minimum) to its
        maximum, half transparent over the greyscale image, as the Grad-CAM column of
        :func:`~pixelflip.plots.counterfactuals.plot_explanation_grid` is. Columns follow the
        mapping's order.
    class_names : sequence of K str, optional
        Names of the classes; needs ``predictions``. None names classes by index.
    predictions : int array of shape (N,), optional
        Predicted class of each image, in 0..K-1, written beside its row.
    max_images : int >= 1, default 6
        Rows drawn: the first ``max_images`` images.
    title : str, optional
        Figure title; default "attribution maps".

    The first row's panels are titled "image" and the method names. Axes carry the labels
    ``image`` and ``attribution``; an attribution axis also has the method name as its gid.

    Raises
    ------
    ValueError
        If ``images`` or a method's maps have the wrong shape or hold NaN or infinite values,
        ``maps_by_method`` is empty, ``predictions`` is not one class index per image,
        ``class_names`` comes without ``predictions`` or ``max_images`` is not a positive
        integer.
    """
    images = _check_batch("images", images)
    if not isinstance(maps_by_method, Mapping) or not maps_by_method:
        raise ValueError(
            "maps_by_method is empty or not a mapping; expected a dict of method name to maps "
            "of shape (N, h, w), with at least one method."
        )
    maps_by_method = {
        str(method): _check_attribution_maps(
            f"maps_by_method[{method!r}]", getattr(maps, "maps", maps), len(images)
        )
        for method, maps in maps_by_method.items()
    }
    row_labels = _row_labels(len(images), class_names, predictions)
    rows = min(len(images), check_integer("max_images", max_images, minimum=1))

    columns = 1 + len(maps_by_method)
    figure = _new_figure(figsize=(2.3 * columns + 0.4, 2.4 * rows + 0.5))
    axes = np.asarray(figure.subplots(rows, columns)).reshape(rows, columns)
    for row in range(rows):
        # Column titles on the first row only: every row shares them.
        _draw_image(axes[row, 0], images[row], "image" if row == 0 else "", label="image")
        axes[row, 0].set_ylabel(row_labels[row], fontsize=9)
        for axis, (method, maps) in zip(axes[row, 1:], maps_by_method.items()):
            _draw_attribution(axis, images[row], maps[row], title=method if row == 0 else "",
                              label="attribution")
            axis.set_gid(method)
    figure.suptitle(title or "attribution maps")
    return figure


def plot_explanation_metrics(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] | str,
    group: str = "model",
    hue: str = "method",
    title: str | None = None,
) -> Figure:
    """Grouped bars, one panel per metric: a group per ``group`` value, a bar per ``hue`` value.

    Parameters
    ----------
    table : DataFrame, one row per (``group``, ``hue``) pair
        For example one row per (model, method) with columns ``validity``, ``median_l1``,
        ``median_l0`` and ``median_seconds`` for counterfactuals, or ``mean_deletion_auc`` and
        ``mean_insertion_auc`` for attributions. Missing values (NaN or None) and pairs without
        a row leave their bar empty, labelled "n/a".
    metrics : sequence of str, or str
        The numeric columns to draw, one panel each (three panels per figure row), titled with
        the column name, underscores as spaces. A single str draws one panel.
    group : str, default "model"
        Column whose values form the groups along the x axis, in order of first appearance.
    hue : str, default "method"
        Column whose values form the bars of a group, in order of first appearance, each in
        the same colour in every panel; one legend names them.
    title : str, optional
        Figure title; default "explanation metrics".

    Bars carry their values (3 significant digits). Panel axes carry the metric name as label.

    Raises
    ------
    ValueError
        If ``table`` has no rows, ``metrics`` is empty, a metric, ``group`` or ``hue`` is not a
        column of ``table`` (the message names it), ``group`` equals ``hue``, a metric column
        holds something that is not a number, or two rows share a (``group``, ``hue``) pair.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    values = _metric_values(table, metrics, group, hue)
    groups, hues = values.index.get_level_values(0).unique(), values.index.get_level_values(1)
    hues = hues.unique()
    # Every (group, hue) pair, in table order; pairs without a row become NaN.
    full_index = pd.MultiIndex.from_product([groups, hues])
    values = values.reindex(full_index)

    panel_columns = min(len(metrics), _METRICS_PER_ROW)
    panel_rows = math.ceil(len(metrics) / panel_columns)
    panel_width = max(3.2, 0.4 + 0.3 * len(groups) * len(hues) + 0.3 * len(groups))
    figure = _new_figure(figsize=(panel_width * panel_columns, 3.2 * panel_rows + 0.7))
    bar_width = 0.8 / len(hues)
    centers = np.arange(len(groups))
    for index, metric in enumerate(metrics):
        axis = figure.add_subplot(panel_rows, panel_columns, index + 1, label=metric)
        by_hue = values[metric].to_numpy().reshape(len(groups), len(hues))
        for hue_index, hue_value in enumerate(hues):
            heights = by_hue[:, hue_index]
            bars = axis.bar(
                centers - 0.4 + bar_width * (hue_index + 0.5), np.nan_to_num(heights),
                width=bar_width, label=str(hue_value), color=f"C{hue_index % 10}",
            )
            axis.bar_label(
                bars, labels=[_format_number(value, "{:.3g}") for value in heights],
                padding=2, fontsize=7,
            )
        axis.set_xticks(centers, [str(name) for name in groups],
                        rotation=30 if len(groups) > 4 else 0)
        axis.margins(y=0.15)
        axis.grid(axis="y", alpha=0.3)
        axis.set_title(metric.replace("_", " "), fontsize=10)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", title=hue, fontsize=8)
    figure.suptitle(title or "explanation metrics")
    return figure


def _row_labels(count: int, class_names, predictions) -> list[str]:
    """"#<index>", with ": <predicted class>" when ``predictions`` are given."""
    if predictions is None:
        if class_names is not None:
            raise ValueError(
                "class_names was given without predictions; pass the predicted class of each "
                "image as predictions, or leave class_names out."
            )
        return [f"#{index}" for index in range(count)]
    predictions = np.asarray(predictions)
    classes = len(class_names) if class_names is not None else None
    if (
        predictions.shape != (count,)
        or not np.issubdtype(predictions.dtype, np.integer)
        or np.any(predictions < 0)
        or (classes is not None and np.any(predictions >= classes))
    ):
        limit = f"0..{classes - 1}" if classes is not None else "0 or more"
        raise ValueError(
            f"predictions has shape {predictions.shape} and dtype {predictions.dtype}; expected "
            f"({count},) integers in {limit}, one predicted class per image."
        )
    names = [str(class_names[int(index)]) if class_names is not None else str(int(index))
             for index in predictions]
    return [f"#{index}: {name}" for index, name in enumerate(names)]


def _metric_values(table, metrics: list[str], group: str, hue: str) -> pd.DataFrame:
    """The float64 ``metrics`` of ``table``, indexed by (``group``, ``hue``)."""
    if not isinstance(table, pd.DataFrame) or len(table) == 0:
        raise ValueError("table has no rows; expected a DataFrame with one row per model and "
                         "method.")
    if not metrics:
        raise ValueError("metrics is empty; expected at least one metric column to draw.")
    if group == hue:
        raise ValueError(f"group and hue are both {group!r}; expected two different columns.")
    for name, column in (("group", group), ("hue", hue)):
        if column not in table.columns:
            raise ValueError(
                f"{name}={column!r} is not a column of table; expected one of "
                f"{list(table.columns)}."
            )
    missing = [metric for metric in metrics if metric not in table.columns]
    if missing:
        raise ValueError(
            f"metrics {missing} are not columns of table; expected some of "
            f"{list(table.columns)}."
        )
    if table.duplicated(subset=[group, hue]).any():
        raise ValueError(
            f"table has several rows for one ({group}, {hue}) pair; expected one row per pair."
        )
    numbers = {}
    for metric in metrics:
        try:
            numbers[metric] = table[metric].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metric column {metric!r} must hold numbers: {error}") from None
    index = pd.MultiIndex.from_arrays([table[group].to_numpy(), table[hue].to_numpy()])
    return pd.DataFrame(numbers, index=index)
