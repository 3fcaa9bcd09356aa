"""The model comparison table: the base CNN and every attention module, side by side.

Each training stage writes its metrics (``metrics/train.json``, ``metrics/attention/<module>.json``)
in the same shape; this module turns them into one row per model, the table that
``dvc metrics show``, ``dvc plots`` and MLflow display.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

COLUMNS = ("model", "module", "backbone", "test_accuracy", "test_loss", "val_accuracy",
           "parameters", "training_seconds", "inference_ms_per_image")


def comparison_row(model_name: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One table row from the metrics a training stage wrote for ``model_name``.

    Raises ValueError naming the missing entry when ``metrics`` lacks one (a metrics file
    written by an older version of the stage: rerun it with ``dvc repro``).
    """
    try:
        return {
            "model": model_name,
            "module": metrics["module"],
            "backbone": metrics["backbone"],
            "test_accuracy": float(metrics["test"]["accuracy"]),
            "test_loss": float(metrics["test"]["loss"]),
            "val_accuracy": float(metrics["validation"]["accuracy"]),
            "parameters": int(metrics["parameters"]["total"]),
            "training_seconds": float(metrics["training_seconds"]),
            "inference_ms_per_image": float(metrics["inference_ms_per_image"]),
        }
    except KeyError as missing:
        raise ValueError(f"the training metrics of model {model_name!r} have no entry "
                         f"{missing}; rerun its stage (dvc repro) to rewrite them.") from None


def comparison_table(metrics_by_model: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per model, in the order given, with the columns of :data:`COLUMNS`."""
    if not metrics_by_model:
        raise ValueError("no model metrics to compare; train at least the base model.")
    rows = [comparison_row(name, metrics) for name, metrics in metrics_by_model.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def best_model(table: pd.DataFrame, metric: str = "val_accuracy") -> str:
    """The model with the highest ``metric``; on a tie the one listed first (the simpler one)."""
    if metric not in table:
        raise ValueError(f"the comparison table has no column {metric!r}; "
                         f"columns: {', '.join(table.columns)}.")
    return str(table.loc[table[metric].idxmax(), "model"])
