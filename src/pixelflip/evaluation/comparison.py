"""The model comparison table: the base CNN and every attention module, side by side.

Each training stage writes its metrics (``metrics/train.json``, ``metrics/attention/<module>.json``)
and their timings (``timings/train.json``, ``timings/attention/<module>.json``) in the same shape;
this module turns both into one row per model, the table that ``dvc plots`` and MLflow display.
The ``compare`` stage writes its timing columns (:data:`pixelflip.stage.timings.TIMING_KEYS`)
apart, under ``timings/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

COLUMNS = ("model", "module", "backbone", "test_accuracy", "test_accuracy_low",
           "test_accuracy_high", "test_loss", "val_accuracy", "parameters", "training_seconds",
           "inference_ms_per_image")

# z of a two-sided 95% interval.
_Z_95 = 1.959963984540054


def wilson_interval(accuracy: float, count: int) -> tuple[float, float]:
    """The 95% Wilson score interval of an accuracy measured on ``count`` images.

    Wilson rather than the normal approximation: it stays inside [0, 1] and keeps its coverage
    near accuracies of 0 or 1, where the digits models sit. Two models whose intervals overlap
    widely are not told apart by the test set; at 1,500 test photos and an accuracy of 0.85 the
    interval is about +-0.018.
    """
    if count < 1:
        raise ValueError(f"count={count!r} is invalid; an accuracy needs at least one image.")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy={accuracy!r} is invalid; expected a value in [0, 1].")
    z_squared = _Z_95 ** 2
    centre = (accuracy + z_squared / (2 * count)) / (1 + z_squared / count)
    half_width = (_Z_95 / (1 + z_squared / count)) * math.sqrt(
        accuracy * (1 - accuracy) / count + z_squared / (4 * count ** 2))
    # Clamped so that rounding never puts a bound past the accuracy or outside [0, 1].
    return (max(0.0, min(accuracy, centre - half_width)),
            min(1.0, max(accuracy, centre + half_width)))


def comparison_row(model_name: str, metrics: Mapping[str, Any], test_images: int
                   ) -> dict[str, Any]:
    """One table row from the metrics a training stage wrote for ``model_name``, its metrics
    and timings files merged into one mapping.

    ``test_images`` is the size of the test split the accuracy was measured on; it gives the
    accuracy its 95% interval (``test_accuracy_low``, ``test_accuracy_high``).

    Raises ValueError naming the missing entry when ``metrics`` lacks one (a metrics file
    written by an older version of the stage: rerun it with ``dvc repro``).
    """
    try:
        accuracy = float(metrics["test"]["accuracy"])
        low, high = wilson_interval(accuracy, test_images)
        return {
            "model": model_name,
            "module": metrics["module"],
            "backbone": metrics["backbone"],
            "test_accuracy": accuracy,
            "test_accuracy_low": low,
            "test_accuracy_high": high,
            "test_loss": float(metrics["test"]["loss"]),
            "val_accuracy": float(metrics["validation"]["accuracy"]),
            "parameters": int(metrics["parameters"]["total"]),
            "training_seconds": float(metrics["training_seconds"]),
            "inference_ms_per_image": float(metrics["inference_ms_per_image"]),
        }
    except KeyError as missing:
        raise ValueError(f"the training metrics of model {model_name!r} have no entry "
                         f"{missing}; rerun its stage (dvc repro) to rewrite them.") from None


def comparison_table(metrics_by_model: Mapping[str, Mapping[str, Any]], test_images: int
                     ) -> pd.DataFrame:
    """One row per model, in the order given, with the columns of :data:`COLUMNS`.

    Every model is tested on the same ``test_images`` images (the prepared test split).
    """
    if not metrics_by_model:
        raise ValueError("no model metrics to compare; train at least the base model.")
    rows = [comparison_row(name, metrics, test_images)
            for name, metrics in metrics_by_model.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def best_model(table: pd.DataFrame, metric: str = "val_accuracy") -> str:
    """The model with the highest ``metric``; on a tie the one listed first (the simpler one)."""
    if metric not in table:
        raise ValueError(f"the comparison table has no column {metric!r}; "
                         f"columns: {', '.join(table.columns)}.")
    return str(table.loc[table[metric].idxmax(), "model"])
