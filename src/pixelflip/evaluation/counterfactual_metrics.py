"""How good counterfactuals are: validity, sparsity, size and cost, per image and in summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pixelflip.config.checks import check_non_negative
from pixelflip.counterfactuals.result import CounterfactualResult, check_result
from pixelflip.explanation.changed_regions import changed_regions
from pixelflip.explanation.targets import ANY_OTHER

_DISTANCE_COLUMNS = ("l1", "l2", "l0", "area", "regions")


def counterfactual_metrics(
    result: CounterfactualResult, *, change_tolerance: float
) -> pd.DataFrame:
    """One row per image of ``result``.

    Columns: ``index``, ``original_prediction``, ``target``, ``counterfactual_prediction``,
    ``success``, ``l1`` (sum of absolute pixel changes over all channels), ``l2`` (Euclidean norm
    of the perturbation), ``l0`` (changed pixels: spatial positions (h, w) where any channel
    changed by more than ``change_tolerance``), ``target_probability`` (probability of the target
    class on the counterfactual; for target -1, of the class the counterfactual reached),
    ``original_probability`` (probability of the original prediction on the original image),
    ``area`` (share of the image's pixel positions the counterfactual changes at all: its
    ``masks``), ``regions`` (connected regions of that mask, 8-neighbour: a few for a region
    counterfactual, many for a haze of pixel changes), ``iterations`` and ``seconds``.

    Parameters
    ----------
    result : CounterfactualResult
    change_tolerance : float >= 0
        Pixel changes up to this size (in [0, 1] pixel units) do not count towards ``l0``.
    """
    check_result(result)
    check_non_negative("change_tolerance", change_tolerance, allow_zero=True)
    rows = np.arange(len(result))
    flat = result.perturbations.reshape(len(result), -1).astype(np.float64)
    changed = np.any(np.abs(result.perturbations) > change_tolerance, axis=-1)
    reached = np.where(
        result.targets == ANY_OTHER, result.counterfactual_predictions, result.targets
    )
    return pd.DataFrame(
        {
            "index": rows,
            "original_prediction": result.original_predictions,
            "target": result.targets,
            "counterfactual_prediction": result.counterfactual_predictions,
            "success": result.success,
            "l1": np.abs(flat).sum(axis=1),
            "l2": np.sqrt(np.square(flat).sum(axis=1)),
            "l0": changed.reshape(len(result), -1).sum(axis=1).astype(np.int64),
            "target_probability": result.counterfactual_probabilities[rows, reached].astype(
                np.float64
            ),
            "original_probability": result.original_probabilities[
                rows, result.original_predictions
            ].astype(np.float64),
            "area": result.masks.reshape(len(result), -1).mean(axis=1),
            "regions": [changed_regions(mask)[1] for mask in result.masks],
            "iterations": result.iterations,
            "seconds": result.seconds,
        }
    )


def summarize_counterfactuals(frame: pd.DataFrame) -> dict:
    """Summary of a :func:`counterfactual_metrics` frame, ready for JSON.

    Returns ``validity`` (success rate over all images), ``num_images``, ``num_valid``,
    ``median_<d>`` and ``mean_<d>`` for d in l1, l2, l0, area and regions (over
    valid counterfactuals only: a failed search returns the unchanged image, whose zero distance
    would flatter the method), ``mean_seconds`` (per counterfactual) and ``mean_iterations``.
    A statistic with no images to average is ``None``, never NaN.
    """
    required = ("success", "iterations", "seconds", *_DISTANCE_COLUMNS)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(
            f"frame lacks the columns {missing}; expected a frame from counterfactual_metrics."
        )
    success = frame["success"].to_numpy(dtype=bool)
    valid = frame[success]
    summary: dict = {
        "num_images": int(len(frame)),
        "num_valid": int(success.sum()),
        "validity": _number(success.mean()) if len(frame) else None,
    }
    for column in _DISTANCE_COLUMNS:
        values = valid[column].to_numpy(dtype=np.float64)
        summary[f"median_{column}"] = _number(np.median(values)) if len(values) else None
        summary[f"mean_{column}"] = _number(np.mean(values)) if len(values) else None
    for column in ("seconds", "iterations"):
        values = frame[column].to_numpy(dtype=np.float64)
        summary[f"mean_{column}"] = _number(np.mean(values)) if len(values) else None
    return summary


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
