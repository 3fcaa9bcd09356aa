"""The evaluate stage's report: scores of the explanations the pipeline made, per image and per
model, set and method, beside each model's accuracy, and the figures that show them.

:class:`ExplanationReport` reads the files the ``select``, ``counterfactuals`` and
``attributions`` stages wrote, scores them (:func:`score_counterfactuals`,
:func:`score_attributions`) and draws the Original | Grad-CAM | Counterfactual | Overlay figures;
:func:`write_report` gathers the summaries into ``metrics/evaluation.json``, the tables under
``plots/evaluate`` and their bar figures, and the seconds apart under ``timings/`` (a rerun on
the same models writes every other file again byte for byte).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pixelflip.attributions.result import AttributionResult
from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.counterfactuals.several import pairwise_distances
from pixelflip.evaluation.counterfactual_metrics import (
    counterfactual_metrics,
    summarize_counterfactuals,
)
from pixelflip.evaluation.deletion_insertion import (
    deletion_insertion_auc,
    summarize_deletion_insertion,
)
from pixelflip.evaluation.im1 import im1_scores
from pixelflip.evaluation.im2 import im2_scores
from pixelflip.evaluation.oracle_agreement import oracle_agreement
from pixelflip.evaluation.plausibility import nearest_class_distance_ratio
from pixelflip.explanation.image_sets import load_image_sets
from pixelflip.explanation.inputs import unit_float_images
from pixelflip.plots.common import save_figure
from pixelflip.plots.comparison import plot_model_comparison
from pixelflip.plots.counterfactuals import plot_explanation_grid, plot_explanation_row
from pixelflip.plots.explanations import plot_explanation_metrics
from pixelflip.plots.method_comparison import plot_method_comparison
from pixelflip.stage import layout
from pixelflip.stage.files import atomic_path, write_json
from pixelflip.stage.timings import split_timing_columns, split_timings
from pixelflip.tracking.runs import log_artifacts, log_metrics

COUNTERFACTUAL_METRICS = ["validity", "median_l1", "median_area", "oracle_agreement",
                          "mean_seconds"]
ATTRIBUTION_METRICS = ["mean_deletion_auc", "mean_insertion_auc"]
#: What ``evaluate`` reports of each model, as ``compare`` measured it.
MODEL_COLUMNS = ("test_accuracy", "test_loss", "parameters")


def score_counterfactuals(
    result, *, change_tolerance: float, train_images, train_labels, autoencoders,
    batch_size: int, oracle=None, shared_autoencoder=None,
) -> tuple[pd.DataFrame, dict]:
    """Per-image metrics of one :class:`CounterfactualResult`, and their summary.

    The frame is :func:`counterfactual_metrics` plus ``changed`` (the prediction is no longer
    the original one), ``plausibility`` (:func:`nearest_class_distance_ratio` against the
    training split: below 1, the counterfactual is nearer to real images of its new class than
    the original was) and ``im1`` (:func:`im1_scores` with the per-class ``autoencoders``; below
    1, the new class's autoencoder explains it better than the old one's), given the
    ``shared_autoencoder`` (trained on every class) ``im2`` (:func:`im2_scores`: how much the new
    class's autoencoder and the all-class one disagree on it), given an ``oracle`` (the
    independently trained classifier) the columns of :func:`oracle_agreement`, and, when the
    result holds several counterfactuals per image, ``pairwise_distance``
    (:func:`pairwise_distances`: mean L1 to the image's other valid counterfactuals).

    The summary is :func:`summarize_counterfactuals` (``validity``: share predicted as the
    requested target) plus ``success_rate`` (share whose prediction changed at all: the two
    differ for targets other than "any other class"), ``mean_target_probability``,
    ``median_plausibility``, ``median_im1``, ``median_im2`` and ``median_pairwise_distance``
    (over valid counterfactuals, those it has columns for; None if none) and,
    given an oracle, ``oracle_agreement`` (share of valid counterfactuals the oracle assigns to
    their target) and ``oracle_original_agreement`` (share of the originals it predicts as the
    model does).
    """
    frame = counterfactual_metrics(result, change_tolerance=change_tolerance)
    frame.insert(frame.columns.get_loc("success") + 1, "changed",
                 result.counterfactual_predictions != result.original_predictions)
    frame["plausibility"] = nearest_class_distance_ratio(result, train_images, train_labels,
                                                         batch_size=max(batch_size, 512))
    frame["im1"] = im1_scores(result, autoencoders, batch_size=batch_size)
    medians = ["plausibility", "im1"]
    if shared_autoencoder is not None:
        frame["im2"] = im2_scores(result, autoencoders, shared_autoencoder,
                                  batch_size=batch_size)
        medians.append("im2")
    if len(np.unique(result.sources)) < len(result):
        frame.insert(frame.columns.get_loc("index") + 1, "source", result.sources)
        frame["pairwise_distance"] = pairwise_distances(result)
        medians.append("pairwise_distance")
    if oracle is not None:
        for column, values in oracle_agreement(result, oracle, batch_size=batch_size).items():
            frame[column] = values
    summary = summarize_counterfactuals(frame)
    valid = frame[frame["success"]]
    if oracle is not None:
        summary["oracle_agreement"] = _mean(valid["oracle_agrees"])
        summary["oracle_original_agreement"] = _mean(frame["oracle_original_agrees"])
    summary["success_rate"] = _mean(frame["changed"])
    summary["mean_target_probability"] = _mean(valid["target_probability"])
    for column in medians:
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


@dataclass
class ExplanationReport:
    """Scores and figures of every explanation of the models, gathered model by model.

    ``counterfactual_methods`` and ``attribution_methods`` are the methods whose files are read;
    ``change_tolerance``, ``deletion_steps``, ``batch_size`` and ``random_state`` are passed to
    the scores; ``train_images``/``train_labels`` (the training split, uint8 is fine) and
    ``autoencoders`` (class index -> keras.Model) serve plausibility and IM1, and with
    ``shared_autoencoder`` (the all-class one, or None) IM2; ``oracle`` (the
    ``oracle`` stage's classifier, or None) re-predicts every counterfactual;
    ``figure_rows`` is the number of rows of each explanation figure.
    """

    class_names: list[str]
    counterfactual_methods: list[str]
    attribution_methods: list[str]
    change_tolerance: float
    deletion_steps: int
    batch_size: int
    random_state: int
    figure_rows: int
    train_images: Any
    train_labels: Any
    autoencoders: dict
    oracle: Any = None
    shared_autoencoder: Any = None
    evaluation: dict = field(default_factory=dict)
    per_image: list = field(default_factory=list)

    def add_model(self, model, model_name: str, model_metrics: dict) -> dict:
        """Score every explanation of ``model`` (called ``model_name``); returns its entry.

        ``model_metrics`` holds at least :data:`MODEL_COLUMNS`, as ``compare`` wrote them.
        """
        # The selected images: what both the counterfactuals and the attribution maps explain.
        sets = [image_set for image_set in load_image_sets(layout.selected_dir(model_name))
                if len(image_set.indices)]
        entry = {key: model_metrics[key] for key in MODEL_COLUMNS}
        entry["counterfactuals"] = {
            image_set.name: self._score_counterfactual_set(model_name, image_set.name)
            for image_set in sets}
        entry["attributions"] = {
            image_set.name: self._score_attribution_set(model, model_name, image_set)
            for image_set in sets}
        self.evaluation[model_name] = entry
        return entry

    def per_image_table(self) -> pd.DataFrame:
        """Every scored counterfactual, one row each: the :func:`score_counterfactuals` frames
        of every model, set and method, with those three columns first."""
        if not self.per_image:
            raise ValueError("no counterfactuals were scored; call add_model for each model "
                             "first.")
        return pd.concat(self.per_image, ignore_index=True)

    def _score_counterfactual_set(self, model_name: str, image_set: str) -> dict:
        summaries, results = {}, {}
        for method in self.counterfactual_methods:
            result = CounterfactualResult.load(layout.explanation_path(
                layout.COUNTERFACTUALS_DIR, model_name, image_set, method))
            frame, summaries[method] = score_counterfactuals(
                result, change_tolerance=self.change_tolerance, train_images=self.train_images,
                train_labels=self.train_labels, autoencoders=self.autoencoders,
                batch_size=self.batch_size, oracle=self.oracle,
                shared_autoencoder=self.shared_autoencoder)
            for position, (column, value) in enumerate(
                    (("model", model_name), ("set", image_set), ("method", method))):
                frame.insert(position, column, value)
            self.per_image.append(frame)
            self._draw(result, model_name, image_set)
            # The side-by-side figure shows each image once, whatever each method returned.
            results[method] = result.first_per_source()
        if len(results) > 1:
            # Pixel and region counterfactuals of the same images, side by side.
            distractors = {method: images for method, result in results.items()
                           if (images := self._distractors(result)) is not None}
            save_figure(plot_method_comparison(
                results, self.class_names, rows=self.figure_rows, distractors=distractors,
                title=f"{model_name} · every method · {image_set} images"),
                layout.EXPLANATIONS_DIR / f"{model_name}_{image_set}_methods.png")
        return summaries

    def _distractors(self, result: CounterfactualResult):
        """The training images a result's regions were copied from, (N, H, W, C) in [0, 1]
        (blank where none was), or None when it used none."""
        indices = result.distractor_indices
        if not (indices >= 0).any():
            return None
        images = unit_float_images(np.asarray(self.train_images)[np.maximum(indices, 0)])
        images[indices < 0] = 0.0
        return images

    def _score_attribution_set(self, model, model_name: str, image_set) -> dict:
        return {method: score_attributions(
            model, image_set.images, self._attribution(model_name, image_set.name, method),
            steps=self.deletion_steps, batch_size=self.batch_size,
            random_state=self.random_state) for method in self.attribution_methods}

    def _attribution(self, model_name: str, image_set: str, method: str) -> AttributionResult:
        return AttributionResult.load(layout.explanation_path(
            layout.ATTRIBUTIONS_DIR, model_name, image_set, method))

    def _draw(self, result: CounterfactualResult, model_name: str, image_set: str) -> None:
        """The research figure of one model, method and set; the base model's one-image example."""
        # One map per image; a result with several counterfactuals per image repeats it.
        grad_cam = (self._attribution(model_name, image_set, "grad_cam").maps[result.sources]
                    if "grad_cam" in self.attribution_methods else None)
        title = f"{model_name} · {result.method} · {image_set} images"
        distractors = self._distractors(result)
        save_figure(plot_explanation_grid(result, grad_cam, self.class_names,
                                          rows=self.figure_rows, title=title,
                                          distractors=distractors),
                    layout.EXPLANATIONS_DIR / f"{model_name}_{image_set}_{result.method}.png")
        if (model_name, image_set, result.method) == (
                layout.BASE_MODEL_NAME, "sampled", self.counterfactual_methods[0]):
            save_figure(plot_explanation_row(result, grad_cam, self.class_names,
                                             index=int(np.argmax(result.success)), title=title,
                                             distractors=distractors),
                        layout.EXPLANATIONS_DIR / f"{model_name}_example.png")


def write_report(report: ExplanationReport) -> pd.DataFrame:
    """``metrics/evaluation.json``, the tables and bar figures under ``plots/evaluate`` and
    their seconds under ``timings/``, all logged to MLflow with the explanation figures;
    returns the counterfactual summary table, seconds included."""
    evaluation = report.evaluation
    write_json(layout.EVALUATION_METRICS, split_timings(evaluation)[0])
    plots_dir = layout.EVALUATE_PLOTS_DIR
    models = pd.DataFrame([{"model": name, **{key: entry[key] for key in MODEL_COLUMNS}}
                           for name, entry in evaluation.items()])
    rows = ["model", "set", "method"]
    counterfactual_summary = summary_rows(evaluation, "counterfactuals")
    counterfactuals, counterfactual_seconds = split_timing_columns(counterfactual_summary, rows)
    attributions, attribution_seconds = split_timing_columns(
        summary_rows(evaluation, "attributions"), rows)
    # A row's seconds are its batch's mean; timings/counterfactuals.csv holds them per set.
    per_image, _ = split_timing_columns(report.per_image_table(), [])
    tables = {plots_dir / "models.csv": models,
              plots_dir / "counterfactuals.csv": counterfactuals,
              plots_dir / "attributions.csv": attributions,
              plots_dir / "counterfactuals_per_image.csv": per_image,
              layout.COUNTERFACTUAL_TIMINGS: counterfactual_seconds,
              layout.ATTRIBUTION_TIMINGS: attribution_seconds}
    for path, table in tables.items():
        with atomic_path(path) as temporary:
            table.to_csv(temporary, index=False, float_format="%.6g")
    save_figure(plot_model_comparison(models, ["test_accuracy"]), plots_dir / "models.png")
    for image_set in counterfactuals["set"].unique():
        save_figure(plot_explanation_metrics(
            counterfactuals[counterfactuals["set"] == image_set],
            # Those the table has: no oracle column without an oracle, and no seconds, which
            # would redraw the figure differently on every run.
            metrics=[metric for metric in COUNTERFACTUAL_METRICS if metric in counterfactuals],
            title=f"Counterfactuals of {image_set} test images, per model and method"),
            plots_dir / f"counterfactuals_{image_set}.png")
    save_figure(plot_explanation_metrics(
        attributions[attributions["set"] == "sampled"], metrics=ATTRIBUTION_METRICS,
        title="Attributions: deletion AUC (lower is better), insertion AUC (higher is better)"),
        plots_dir / "attributions.png")
    log_metrics(evaluation)
    log_artifacts(plots_dir, artifact_path="plots")
    log_artifacts(layout.EXPLANATIONS_DIR, artifact_path="explanations")
    log_artifacts(layout.EVALUATION_METRICS)
    for path in (layout.COUNTERFACTUAL_TIMINGS, layout.ATTRIBUTION_TIMINGS):
        log_artifacts(path, artifact_path="timings")
    return counterfactual_summary


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
