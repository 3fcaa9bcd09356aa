"""Every figure of the project, drawn with matplotlib's Agg renderer.

Functions return a :class:`matplotlib.figure.Figure` that is not registered with pyplot (so no
display backend is needed and nothing leaks between calls); :func:`save_figure` writes it as a
PNG atomically.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from pixelflip.io import atomic_path

DPI = 120
# Diverging and reversed so that positive changes (brighter) are red, negative (darker) blue.
PERTURBATION_COLORMAP = "RdBu_r"
SUCCESS_COLOR = "#1a7f37"
FAILURE_COLOR = "#cf222e"


def save_figure(figure: Figure, path: str | os.PathLike) -> None:
    """Write ``figure`` to ``path`` as a PNG at 120 dpi, atomically, and release it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    if "matplotlib.pyplot" in sys.modules:
        # Only figures made through pyplot are held open by it; closing ours is a no-op.
        sys.modules["matplotlib.pyplot"].close(figure)


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
    """One row per image of a :class:`~pixelflip.explain.CounterfactualResult`.

    Columns are original, counterfactual and perturbation as in :func:`plot_counterfactual`.
    Titles give the predicted classes (named by ``class_names``, or by index when None), their
    probabilities and the target; the counterfactual title is green with "flipped" for a
    success and red with "failed" otherwise. Shows the first ``max_images`` images.
    """
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images={max_images!r} is invalid; expected an integer >= 1.")
    if len(result) == 0:
        raise ValueError("result holds no images; expected at least one counterfactual to plot.")
    if class_names is not None and len(class_names) != result.num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} entries; expected {result.num_classes}, one per "
            "class."
        )
    from pixelflip.explain.result import target_label

    rows = min(len(result), max_images)
    figure = _new_figure(figsize=(9.0, 2.9 * rows))
    axes = np.asarray(figure.subplots(rows, 3)).reshape(rows, 3)
    for row in range(rows):
        original_class = int(result.original_predictions[row])
        reached_class = int(result.counterfactual_predictions[row])
        succeeded = bool(result.success[row])
        target = target_label(int(result.targets[row]), class_names)
        _draw_triplet(
            figure,
            axes[row],
            result.originals[row],
            result.counterfactuals[row],
            result.perturbations[row],
            original_title=f"#{row} {_name(original_class, class_names)} "
            f"({result.original_probabilities[row, original_class]:.2f})",
            counterfactual_title=f"{_name(reached_class, class_names)} "
            f"({result.counterfactual_probabilities[row, reached_class]:.2f}), target {target}\n"
            + ("flipped" if succeeded else "failed"),
        )
        axes[row, 1].title.set_color(SUCCESS_COLOR if succeeded else FAILURE_COLOR)
    figure.suptitle(f"{result.method} counterfactuals ({rows} of {len(result)})")
    return figure


def plot_training_history(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss and accuracy per epoch, training against validation, in two panels.

    ``history`` maps metric names to per-epoch values, as ``keras.callbacks.History.history``
    does: ``loss`` is required; ``val_loss``, an accuracy key (``accuracy`` or any name ending
    in ``accuracy``) and its ``val_`` twin are drawn when present.
    """
    history = getattr(history, "history", history)
    if not isinstance(history, Mapping) or "loss" not in history:
        raise ValueError(
            "history has no 'loss' entry; expected a dict of per-epoch lists such as "
            "keras History.history."
        )
    accuracy_keys = [
        key for key in history if key.endswith("accuracy") and not key.startswith("val_")
    ]
    figure = _new_figure(figsize=(10.0, 3.8))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    panels = ((loss_axis, "loss", "loss"),)
    if accuracy_keys:
        panels += ((accuracy_axis, accuracy_keys[0], "accuracy"),)
    else:
        accuracy_axis.text(0.5, 0.5, "no accuracy recorded", ha="center", va="center")
        accuracy_axis.set_axis_off()
    for axis, key, label in panels:
        for name, style in ((key, "-o"), (f"val_{key}", "--s")):
            if name in history:
                values = np.asarray(history[name], dtype=np.float64)
                epochs = np.arange(1, len(values) + 1)
                kind = "validation" if name.startswith("val_") else "training"
                axis.plot(epochs, values, style, markersize=3, label=kind)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
    return figure


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
        labels = ["n/a" if np.isnan(value) else f"{value:.3g}" for value in column_values]
        axis.bar_label(bars, labels=labels, padding=2, fontsize=8)
    axis.set_yticks(centers, names)
    axis.invert_yaxis()
    axis.margins(x=0.15)
    axis.grid(axis="x", alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    axis.set_title("model comparison")
    return figure


def _new_figure(**kwargs) -> Figure:
    figure = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(figure)
    return figure


def _name(index: int, class_names: Sequence[str] | None) -> str:
    return str(class_names[index]) if class_names is not None else str(index)


def _draw_triplet(figure, axes, original, counterfactual, perturbation, *, original_title,
                  counterfactual_title) -> None:
    original, counterfactual, perturbation = (
        np.asarray(array, dtype=np.float32) for array in (original, counterfactual, perturbation)
    )
    if original.ndim != 3 or original.shape[-1] not in (1, 3):
        raise ValueError(
            f"original has shape {original.shape}; expected (H, W, C) with 1 or 3 channels."
        )
    for name, array in (("counterfactual", counterfactual), ("perturbation", perturbation)):
        if array.shape != original.shape:
            raise ValueError(
                f"{name} has shape {array.shape}; expected {original.shape}, the original's."
            )
    for axis, image, title in (
        (axes[0], original, original_title),
        (axes[1], counterfactual, counterfactual_title),
    ):
        if image.shape[-1] == 1:
            axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            axis.imshow(np.clip(image, 0.0, 1.0))
        axis.set_title(title, fontsize=9)

    change = perturbation.mean(axis=-1)
    limit = float(np.abs(change).max()) or 1.0
    heatmap = axes[2].imshow(
        change, cmap=PERTURBATION_COLORMAP, norm=Normalize(vmin=-limit, vmax=limit)
    )
    axes[2].set_title("perturbation (red brighter, blue darker)", fontsize=9)
    # A label lets tests and callers find the heatmap among the axes.
    axes[2].set_label("perturbation")
    figure.colorbar(heatmap, ax=axes[2], fraction=0.046, pad=0.04)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
