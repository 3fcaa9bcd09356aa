"""The headline of a run: some twenty numbers that ``dvc metrics show`` prints as a short table.

``evaluate`` writes them as small files, so that DVC (one row per file, one column per key)
shows one short row per model, method and data set with few shared columns:

- ``summary/<model>.json``: ``{"accuracy"}``, the model's test accuracy as ``compare`` measured it;
- ``summary/<method>.json``: ``{"validity", "median_l0", "oracle"}`` of a counterfactual method;
- ``summary/data.json``: ``{"kept", "quarantined"}``, image counts of the ``validate`` stage;
- ``timings/summary/<method>.json``: ``{"s_per_image"}``, apart, since it changes run to run.

A method's numbers are pooled over every explained model on the ``sampled`` image set, per
counterfactual (one row of the per-image results; several per image with
``num_counterfactuals``), never a median of per-model medians:

- ``validity``: share of all its counterfactuals the model predicts as their target;
- ``median_l0``: median changed pixels over the valid ones;
- ``oracle``: share of the valid ones the independent oracle also assigns to their target, only
  where the results hold the oracle's answers (and some counterfactual is valid);
- ``s_per_image``: mean seconds per explained image, each image's counterfactuals summed.

A statistic with nothing to measure (no valid counterfactual) is left out, not written as null.
Every float keeps :data:`SIGNIFICANT_DIGITS` significant digits, so the table stays narrow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pixelflip.stage import layout
from pixelflip.stage.files import atomic_path, write_json

#: The image set the headline pools: test images drawn at random, not the models' mistakes.
SUMMARY_SET = "sampled"
SIGNIFICANT_DIGITS = 4
_REQUIRED_COLUMNS = ("model", "set", "method", "index", "success", "l0", "seconds")


@dataclass(frozen=True)
class Headline:
    """The headline files' contents and the same numbers as one flat dict.

    ``summary`` maps a file stem (model, method or ``data``) to the contents of
    ``summary/<stem>.json``; ``timings`` maps a method to that of
    ``timings/summary/<method>.json``; ``metrics`` holds every number once under a flat name
    (``accuracy.<model>``, ``<method>.validity``, ``data.kept``, ``<method>.s_per_image``),
    ready for an MLflow run.
    """

    summary: dict[str, dict[str, float | int]]
    timings: dict[str, dict[str, float]]
    metrics: dict[str, float | int]


def significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (0.0352392 -> 0.03524)."""
    return float(f"{float(value):.{digits}g}")


def headline(per_image: pd.DataFrame, *, accuracies: Mapping[str, float],
             data_metrics: Mapping[str, Any], methods: Sequence[str],
             image_set: str = SUMMARY_SET) -> Headline:
    """The headline of one run.

    Parameters
    ----------
    per_image : DataFrame
        The per-counterfactual results of every model, set and method, as ``evaluate`` scores
        them (``plots/evaluate/counterfactuals_per_image.csv`` plus their ``seconds``): columns
        ``model``, ``set``, ``method``, ``index``, ``success``, ``l0``, ``seconds``, and where
        present ``source`` (the image of each row when there are several per image) and
        ``oracle_agrees``.
    accuracies : mapping of model name to test accuracy in [0, 1]
        Every explained model, in order.
    data_metrics : mapping
        The ``validate`` stage's ``metrics/data.json``: ``kept`` is the number of images in
        its splits (statuses kept and converted), ``quarantined`` its quarantined files.
    methods : sequence of str
        The counterfactual methods, each of which must have rows on ``image_set``.

    Raises ValueError when a column is missing, a method has no results on ``image_set`` or
    two files would share a name.
    """
    missing = [column for column in _REQUIRED_COLUMNS if column not in per_image]
    if missing:
        raise ValueError(f"the per-image results lack the columns {missing}; pass the frame "
                         "evaluate scores (ExplanationReport.per_image_table()).")
    stems = [*accuracies, *methods, layout.SUMMARY_DATA_NAME]
    if len(set(stems)) < len(stems):
        raise ValueError(f"models, methods and {layout.SUMMARY_DATA_NAME!r} share a name "
                         f"({', '.join(stems)}); each needs a summary file of its own, so "
                         "rename the clashing attention module or method.")
    summary: dict[str, dict] = {name: {"accuracy": significant(accuracy)}
                                for name, accuracy in accuracies.items()}
    metrics: dict[str, float | int] = {f"accuracy.{name}": values["accuracy"]
                                       for name, values in summary.items()}
    timings: dict[str, dict] = {}
    pooled = per_image[per_image["set"] == image_set]
    for method in methods:
        rows = pooled[pooled["method"] == method]
        if not len(rows):
            raise ValueError(f"the per-image results have no {image_set!r} rows of method "
                             f"{method!r}; rerun the counterfactuals and evaluate stages "
                             "(dvc repro evaluate) so that every method is scored.")
        summary[method] = method_summary(rows)
        timings[method] = {"s_per_image": significant(seconds_per_image(rows))}
        metrics.update({f"{method}.{key}": value
                        for key, value in {**summary[method], **timings[method]}.items()})
    summary[layout.SUMMARY_DATA_NAME] = data_summary(data_metrics)
    metrics.update({f"{layout.SUMMARY_DATA_NAME}.{key}": value
                    for key, value in summary[layout.SUMMARY_DATA_NAME].items()})
    return Headline(summary=summary, timings=timings, metrics=metrics)


def headline_metrics(per_image: pd.DataFrame, *, accuracies: Mapping[str, float],
                     data_metrics: Mapping[str, Any], methods: Sequence[str]
                     ) -> dict[str, float | int]:
    """:attr:`Headline.metrics` of :func:`headline`: every headline number under a flat name."""
    return headline(per_image, accuracies=accuracies, data_metrics=data_metrics,
                    methods=methods).metrics


def method_summary(rows: pd.DataFrame) -> dict[str, float]:
    """``validity``, ``median_l0`` and ``oracle`` of one method's pooled rows (see the module)."""
    success = rows["success"].to_numpy(dtype=bool)
    summary = {"validity": significant(success.mean())}
    valid = rows[success]
    if len(valid):
        summary["median_l0"] = significant(np.median(valid["l0"].to_numpy(dtype=np.float64)))
    if "oracle_agrees" in valid:
        # NaN where a result was scored without the oracle.
        agrees = valid["oracle_agrees"].astype(np.float64).dropna()
        if len(agrees):
            summary["oracle"] = significant(agrees.mean())
    return summary


def seconds_per_image(rows: pd.DataFrame) -> float:
    """Mean seconds per explained image of one method's pooled rows.

    A row's seconds are those of one counterfactual; an image with several (``source`` names
    it; without that column each row is its own image) costs their sum.
    """
    image = rows["index"]
    if "source" in rows:
        # Frames of single counterfactuals have no source column and read NaN after a concat.
        image = rows["source"].fillna(rows["index"])
    per_image = rows["seconds"].groupby([rows["model"], image.astype(np.int64)]).sum()
    return float(per_image.mean())


def data_summary(data_metrics: Mapping[str, Any]) -> dict[str, int]:
    """``kept`` (images in the splits) and ``quarantined`` of ``metrics/data.json``."""
    try:
        return {"kept": int(sum(data_metrics["split_counts"].values())),
                "quarantined": int(data_metrics["status_counts"]["quarantined"])}
    except KeyError as missing:
        raise ValueError(f"the data metrics have no entry {missing}; rerun the validate stage "
                         "(dvc repro validate) to rewrite metrics/data.json.") from None


def write_headline(result: Headline) -> None:
    """Write ``summary/`` and ``timings/summary/``, each folder replaced whole (no stale file of
    a method or model no longer run)."""
    for folder, files in ((layout.SUMMARY_DIR, result.summary),
                          (layout.SUMMARY_TIMINGS_DIR, result.timings)):
        with atomic_path(folder) as temporary:
            temporary.mkdir()
            for stem, contents in files.items():
                write_json(temporary / f"{stem}.json", contents)
