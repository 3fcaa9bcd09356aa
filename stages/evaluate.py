"""DVC stage `evaluate`: model quality and explanation quality side by side, per model, and the
figures that show the explanations (Original | Grad-CAM | Counterfactual | Overlay)."""

import pandas as pd

from pixelflip import layout, tracking
from pixelflip.io import atomic_path, read_json, write_json
from pixelflip.stage import StageError, run_stage

COUNTERFACTUAL_METRICS = ["validity", "median_l1", "median_l0", "mean_seconds"]
ATTRIBUTION_METRICS = ["mean_deletion_auc", "mean_insertion_auc"]


def main(params):
    import keras

    from pixelflip.data.loaders import load_classes, load_split, make_dataset
    from pixelflip.models.training import count_parameters, evaluate_classifier, load_classifier

    classes = load_classes(layout.PREPARED_DIR)
    test = make_dataset(layout.PREPARED_DIR, "test", batch_size=params.evaluate.batch_size,
                        shuffle=False, random_state=params.seed)
    train_images, train_labels = load_split(layout.PREPARED_DIR, "train")
    autoencoders = {index: keras.saving.load_model(layout.autoencoder_path(index))
                    for index in range(len(classes))}
    evaluation, per_image = {}, []
    for name in layout.model_names(params.attention.modules):
        model = load_classifier(layout.model_path(name))
        quality = evaluate_classifier(model, test)
        evaluation[name] = {"test_accuracy": quality["accuracy"], "test_loss": quality["loss"],
                            "parameters": count_parameters(model)["total"]}
        sets = explained_sets(name)
        evaluation[name]["counterfactuals"] = {
            image_set: score_counterfactual_set(name, image_set, params, classes, per_image,
                                                train_images, train_labels, autoencoders)
            for image_set, indices in sets.items() if indices}
        evaluation[name]["attributions"] = {
            image_set: score_attribution_set(model, name, image_set, params)
            for image_set, indices in sets.items() if indices}
        sampled = evaluation[name]["counterfactuals"]["sampled"]
        print(f"[evaluate] {name}: accuracy {quality['accuracy']:.4f}; counterfactual validity "
              + ", ".join(f"{method} {summary['validity']:.3f}"
                          for method, summary in sampled.items()), flush=True)
    write_outputs(evaluation, per_image)


def explained_sets(model_name):
    """The image sets of one model, checked to be the same in both explanation stages."""
    sets = read_json(layout.COUNTERFACTUALS_DIR / model_name / "sets.json")
    if read_json(layout.ATTRIBUTIONS_DIR / model_name / "sets.json") != sets:
        raise StageError(f"the counterfactuals and attributions of model '{model_name}' explain "
                         "different test images; run `dvc repro` so both stages rerun")
    return sets


def score_counterfactual_set(model_name, image_set, params, classes, per_image, train_images,
                             train_labels, autoencoders):
    """Summaries by method of one set; appends the per-image frames and draws its figures."""
    from pixelflip.explain import CounterfactualResult
    from pixelflip.explanation_report import score_counterfactuals

    summaries = {}
    for method in params.counterfactuals.methods:
        result = CounterfactualResult.load(
            layout.explanation_path(layout.COUNTERFACTUALS_DIR, model_name, image_set, method))
        frame, summaries[method] = score_counterfactuals(
            result, change_tolerance=params.counterfactuals.change_tolerance,
            train_images=train_images, train_labels=train_labels, autoencoders=autoencoders,
            batch_size=params.evaluate.batch_size)
        frame.insert(0, "model", model_name)
        frame.insert(1, "set", image_set)
        frame.insert(2, "method", method)
        per_image.append(frame)
        draw_explanations(result, model_name, image_set, params, classes)
    return summaries


def score_attribution_set(model, model_name, image_set, params):
    """Deletion and insertion AUC by attribution method, on the images the maps were made for."""
    from pixelflip.explain import AttributionResult, CounterfactualResult
    from pixelflip.explanation_report import score_attributions

    first_method = params.counterfactuals.methods[0]
    images = CounterfactualResult.load(layout.explanation_path(
        layout.COUNTERFACTUALS_DIR, model_name, image_set, first_method)).originals
    return {method: score_attributions(
        model, images,
        AttributionResult.load(layout.explanation_path(layout.ATTRIBUTIONS_DIR, model_name,
                                                       image_set, method)),
        steps=params.evaluate.deletion_steps, batch_size=params.evaluate.batch_size,
        random_state=params.seed) for method in params.attributions.methods}


def draw_explanations(result, model_name, image_set, params, classes):
    """The research figure for one model, method and set; the base model's one-image example."""
    import numpy as np

    from pixelflip.explain import AttributionResult
    from pixelflip.plots import plot_explanation_grid, plot_explanation_row, save_figure

    grad_cam = None
    if "grad_cam" in params.attributions.methods:
        grad_cam = AttributionResult.load(layout.explanation_path(
            layout.ATTRIBUTIONS_DIR, model_name, image_set, "grad_cam")).maps
    title = f"{model_name} · {result.method} · {image_set} images"
    save_figure(plot_explanation_grid(result, grad_cam, classes,
                                      rows=params.counterfactuals.figure_images, title=title),
                layout.EXPLANATIONS_DIR / f"{model_name}_{image_set}_{result.method}.png")
    first_method = params.counterfactuals.methods[0]
    if (model_name, image_set, result.method) == (layout.BASE_MODEL_NAME, "sampled", first_method):
        index = int(np.argmax(result.success))
        save_figure(plot_explanation_row(result, grad_cam, classes, index=index, title=title),
                    layout.EXPLANATIONS_DIR / f"{model_name}_example.png")


def write_outputs(evaluation, per_image):
    """metrics/evaluation.json, the tables and bar figures under plots/evaluate, MLflow."""
    from pixelflip.explanation_report import summary_rows
    from pixelflip.plots import plot_explanation_metrics, plot_model_comparison, save_figure

    write_json(layout.METRICS_DIR / "evaluation.json", evaluation)
    plots_dir = layout.PLOTS_DIR / "evaluate"
    plots_dir.mkdir(parents=True, exist_ok=True)
    models = pd.DataFrame([{"model": name, **{key: entry[key] for key in (
        "test_accuracy", "test_loss", "parameters")}} for name, entry in evaluation.items()])
    counterfactuals = summary_rows(evaluation, "counterfactuals")
    attributions = summary_rows(evaluation, "attributions")
    tables = {"models.csv": models, "counterfactuals.csv": counterfactuals,
              "attributions.csv": attributions,
              "counterfactuals_per_image.csv": pd.concat(per_image, ignore_index=True)}
    for file_name, table in tables.items():
        with atomic_path(plots_dir / file_name) as temporary:
            table.to_csv(temporary, index=False, float_format="%.6g")
    save_figure(plot_model_comparison(models, ["test_accuracy"]), plots_dir / "models.png")
    for image_set in counterfactuals["set"].unique():
        save_figure(plot_explanation_metrics(
            counterfactuals[counterfactuals["set"] == image_set], metrics=COUNTERFACTUAL_METRICS,
            title=f"Counterfactuals of {image_set} test images, per model and method"),
            plots_dir / f"counterfactuals_{image_set}.png")
    save_figure(plot_explanation_metrics(
        attributions[attributions["set"] == "sampled"], metrics=ATTRIBUTION_METRICS,
        title="Attributions: deletion AUC (lower is better), insertion AUC (higher is better)"),
        plots_dir / "attributions.png")
    print(counterfactuals[["model", "set", "method", *COUNTERFACTUAL_METRICS]].to_string(
        index=False, float_format=lambda value: f"{value:.4g}"), flush=True)
    tracking.log_metrics(evaluation)
    tracking.log_artifacts(plots_dir, artifact_path="plots")
    tracking.log_artifacts(layout.EXPLANATIONS_DIR, artifact_path="explanations")
    tracking.log_artifacts(layout.METRICS_DIR / "evaluation.json")


if __name__ == "__main__":
    run_stage("evaluate", main, sections=("evaluate",))
