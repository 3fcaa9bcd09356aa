"""Scores of the explanations the pipeline made, per image and per model, set and method.

The ``evaluate`` stage calls :func:`score_counterfactuals` and :func:`score_attributions` on the
files the ``counterfactuals`` and ``attributions`` stages wrote, and gathers their summaries into
``metrics/evaluation.json`` and the tables under ``plots/evaluate``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pixelflip.explain import (
    counterfactual_metrics,
    deletion_insertion_auc,
    im1_scores,
    nearest_class_distance_ratio,
    summarize_counterfactuals,
    summarize_deletion_insertion,
)


def score_counterfactuals(
    result, *, change_tolerance: float, train_images, train_labels, autoencoders,
    batch_size: int,
) -> tuple[pd.DataFrame, dict]:
    """Per-image metrics of one :class:`CounterfactualResult`, and their summary.

    The frame is :func:`counterfactual_metrics` plus ``changed`` (the prediction is no longer
    the original one), ``plausibility`` (:func:`nearest_class_distance_ratio` against the
    training split: below 1, the counterfactual is nearer to real images of its new class than
    the original was) and ``im1`` (:func:`im1_scores` with the per-class ``autoencoders``; below
    1, the new class's autoencoder explains it better than the old one's).

    The summary is :func:`summarize_counterfactuals` (``validity``: share predicted as the
    requested target) plus ``success_rate`` (share whose prediction changed at all: the two
    differ for targets other than "any other class"), ``mean_target_probability``,
    ``median_plausibility`` and ``median_im1`` (over valid counterfactuals; None if none).
    """
    frame = counterfactual_metrics(result, change_tolerance=change_tolerance)
    frame.insert(frame.columns.get_loc("success") + 1, "changed",
                 result.counterfactual_predictions != result.original_predictions)
    frame["plausibility"] = nearest_class_distance_ratio(result, train_images, train_labels,
                                                         batch_size=max(batch_size, 512))
    frame["im1"] = im1_scores(result, autoencoders, batch_size=batch_size)
    summary = summarize_counterfactuals(frame)
    valid = frame[frame["success"]]
    summary["success_rate"] = _mean(frame["changed"])
    summary["mean_target_probability"] = _mean(valid["target_probability"])
    for column in ("plausibility", "im1"):
        values = valid[column].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        summary[f"median_{column}"] = _number(np.median(values)) if len(values) else None
    return frame, summary


def score_attributions(model, images, attribution, *, steps: int, batch_size: int,
                       random_state: int) -> dict:
    """Deletion and insertion AUC of one :class:`AttributionResult` on its ``images``.

    ``images`` (N, H, W, C) float32 in [0, 1] are the images the maps were made for; the curves
    follow the probability of the class each map explains. Returns
    :func:`summarize_deletion_insertion` plus ``mean_seconds`` (per map). Lower deletion and
    higher insertion AUC mean the map ranks the pixels the model needs first.
    """
    scores = deletion_insertion_auc(model, images, attribution.maps, attribution.targets,
                                    steps=steps, batch_size=max(batch_size, 2),
                                    random_state=random_state)
    summary = summarize_deletion_insertion(scores)
    summary["mean_seconds"] = _mean(attribution.seconds)
    return summary


def summary_rows(evaluation: dict, kind: str) -> pd.DataFrame:
    """One row per (model, set, method) of ``evaluation[model][kind][set][method]`` summaries."""
    rows = [
        {"model": model, "set": image_set, "method": method, **summary}
        for model, entry in evaluation.items()
        for image_set, methods in entry.get(kind, {}).items()
        for method, summary in methods.items()
    ]
    return pd.DataFrame(rows)


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return _number(values.mean()) if len(values) else None


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
