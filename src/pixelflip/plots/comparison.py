"""Figures that compare models: grouped metric bars and the attention comparison table.

Neither draws a timing: a figure in ``plots/`` is written again byte for byte by a rerun on the
same models, and seconds change from run to run (``dvc plots`` draws them from ``timings/``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

from pixelflip.plots.common import SUCCESS_COLOR, _new_figure

COMPARISON_TABLE_COLUMNS = (
    "model", "module", "backbone", "test_accuracy", "test_accuracy_low", "test_accuracy_high",
    "test_loss", "parameters",
)
# How each numeric column is written in the table and on the bars.
_NUMBER_FORMATS = {
    "test_accuracy": "{:.4f}",
    "test_accuracy_low": "{:.4f}",
    "test_accuracy_high": "{:.4f}",
    "test_loss": "{:.4f}",
    "parameters": "{:,.0f}",
}
# Table headers that differ from the column name with spaces for underscores.
_HEADERS = {
    "test_accuracy_low": "95% interval low",
    "test_accuracy_high": "95% interval high",
}
# The bar charts and their titles, left to right.
_BAR_TITLES = {
    "test_accuracy": "test accuracy",
    "parameters": "parameters",
}
_BAR_COLOR = "#8c959f"
_HEADER_COLOR = "#eaeef2"
_HIGHLIGHT_COLOR = "#dafbe1"


def plot_model_comparison(frame: pd.DataFrame, metric_columns: Sequence[str]) -> Figure:
    """Grouped horizontal bars: one group per model (row of ``frame``), one bar per metric.

    Models are named by a ``model`` column when ``frame`` has one, else by its index. Missing
    (NaN) values are drawn as "n/a".
    """
    metric_columns = list(metric_columns)
    if len(frame) == 0 or not metric_columns:
        raise ValueError(
            "frame or metric_columns is empty; expected at least one model row and one metric."
        )
    missing = [column for column in metric_columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"metric_columns {missing} are not columns of frame; expected some of "
            f"{list(frame.columns)}."
        )
    try:
        values = frame[metric_columns].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metric_columns {metric_columns} must hold numbers: {error}") from None
    names = [str(name) for name in (frame["model"] if "model" in frame.columns else frame.index)]

    models, metrics = values.shape
    bar_height = 0.8 / metrics
    figure = _new_figure(figsize=(8.0, 1.0 + 0.45 * models * metrics + 0.3 * models))
    axis = figure.add_subplot()
    centers = np.arange(models)
    for index, column in enumerate(metric_columns):
        positions = centers - 0.4 + bar_height * (index + 0.5)
        column_values = values[:, index]
        bars = axis.barh(
            positions, np.nan_to_num(column_values), height=bar_height, label=column
        )
        labels = [_format_number(value, "{:.3g}") for value in column_values]
        axis.bar_label(bars, labels=labels, padding=2, fontsize=8)
    axis.set_yticks(centers, names)
    axis.invert_yaxis()
    axis.margins(x=0.15)
    axis.grid(axis="x", alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    axis.set_title("model comparison")
    return figure


def plot_comparison_table(frame: pd.DataFrame, *, best_by: str = "test_accuracy") -> Figure:
    """The attention comparison as a figure: a table of every model, then two bar charts.

    Parameters
    ----------
    frame : DataFrame, one row per model
        Columns ``model`` (for example base, se, cbam, pam, gc), ``module``, ``backbone``,
        ``test_accuracy`` with its 95% interval ``test_accuracy_low`` and
        ``test_accuracy_high``, ``test_loss`` and ``parameters``; other columns are ignored.
        Missing values show as "n/a".
    best_by : str, default "test_accuracy"
        The numeric column whose highest value marks the best model, for example
        ``val_accuracy`` to agree with a choice made on the validation split; a column outside
        the list above is added to the table.

    The table writes accuracy and loss with 4 decimals and parameters with thousands
    separators. Below it, horizontal bars give test accuracy and parameters per model, the
    accuracy bars with their interval as error bars, so a difference inside the intervals reads
    as noise. The model(s) with the highest ``best_by`` are highlighted: a green table row and
    green bars in every chart, so its size is read at a glance. Axes carry the labels ``table``
    and the two column names for callers and tests.

    Raises
    ------
    ValueError
        If columns are missing (the message names them, ``best_by`` included), ``frame`` has no
        rows, or a numeric column holds something that is not a number.
    """
    columns = list(COMPARISON_TABLE_COLUMNS)
    if best_by not in columns:
        columns.append(best_by)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"frame is missing the columns {missing}; expected all of {columns} "
            "(best_by names the last one)."
        )
    if len(frame) == 0:
        raise ValueError("frame has no rows; expected one row per model.")
    numbers = {}
    for column in (*_NUMBER_FORMATS, best_by):
        try:
            numbers[column] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as error:
            raise ValueError(f"column {column!r} must hold numbers: {error}") from None
    names = [_format_text(name) for name in frame["model"]]
    ranking = numbers[best_by]
    best = (
        ranking == np.nanmax(ranking) if np.isfinite(ranking).any()
        else np.zeros(len(frame), dtype=bool)
    )

    models = len(frame)
    table_height, bars_height = 0.5 + 0.3 * (models + 1), 1.0 + 0.4 * models
    figure = _new_figure(figsize=(12.0, table_height + bars_height + 0.5))
    grid = figure.add_gridspec(2, len(_BAR_TITLES), height_ratios=[table_height, bars_height])
    table_axis = figure.add_subplot(grid[0, :], label="table")
    _draw_table(table_axis, frame, columns, numbers, best)
    for index, column in enumerate(_BAR_TITLES):
        axis = figure.add_subplot(grid[1, index], label=column)
        interval = ((numbers["test_accuracy_low"], numbers["test_accuracy_high"])
                    if column == "test_accuracy" else None)
        _draw_bars(axis, names, numbers[column], column, best, interval)
    winners = ", ".join(name for name, is_best in zip(names, best) if is_best) or "n/a"
    figure.suptitle(f"attention modules compared (best {_header(best_by)}: {winners})")
    return figure


def _draw_table(axis, frame: pd.DataFrame, columns, numbers, best: np.ndarray) -> None:
    cells = [
        [
            _format_number(numbers[column][row], _NUMBER_FORMATS.get(column, "{:.4g}"))
            if column in numbers else _format_text(frame[column].iloc[row])
            for column in columns
        ]
        for row in range(len(frame))
    ]
    table = axis.table(
        cellText=cells,
        colLabels=[_header(column) for column in columns],
        loc="center", cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.4)
    for (row, _), cell in table.get_celld().items():
        # Row 0 is the header; data rows start at 1.
        if row == 0:
            cell.set_facecolor(_HEADER_COLOR)
            cell.get_text().set_fontweight("bold")
        elif best[row - 1]:
            cell.set_facecolor(_HIGHLIGHT_COLOR)
            cell.get_text().set_fontweight("bold")
    axis.set_axis_off()


def _draw_bars(axis, names, values: np.ndarray, column: str, best: np.ndarray,
               interval: tuple[np.ndarray, np.ndarray] | None) -> None:
    positions = np.arange(len(names))
    error = None
    if interval is not None:
        low, high = interval
        error = np.nan_to_num(np.stack([values - low, high - values]))
    bars = axis.barh(
        positions, np.nan_to_num(values), height=0.7, xerr=error, capsize=3,
        color=[SUCCESS_COLOR if is_best else _BAR_COLOR for is_best in best],
    )
    number_format = _NUMBER_FORMATS[column]
    axis.bar_label(
        bars, labels=[_format_number(value, number_format) for value in values], padding=2,
        fontsize=8,
    )
    axis.set_yticks(positions, names)
    axis.invert_yaxis()
    axis.margins(x=0.3)
    axis.xaxis.set_major_locator(MaxNLocator(nbins=3))
    if column == "parameters":
        axis.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axis.grid(axis="x", alpha=0.3)
    axis.set_title(_BAR_TITLES[column], fontsize=10)


def _header(column: str) -> str:
    return _HEADERS.get(column, column.replace("_", " "))


def _format_number(value: float, number_format: str) -> str:
    return "n/a" if np.isnan(value) else number_format.format(value)


def _format_text(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
