"""DVC stage `evaluate`: model quality (as `compare` measured it) and explanation quality side by
side, per model, the figures that show the explanations (Original | Grad-CAM |
Counterfactual | Overlay), and the run's headline (`summary/`, `timings/summary/`)."""

from pixelflip.stage import layout
from pixelflip.stage.console import progress
from pixelflip.stage.frame import run_stage
from pixelflip.tracking.runs import log_pipeline_metrics


def main(params):
    from pixelflip.data.loaders import load_classes, load_split
    from pixelflip.evaluation.autoencoders import load_class_autoencoders, load_shared_autoencoder
    from pixelflip.evaluation.report import COUNTERFACTUAL_METRICS, ExplanationReport, write_report
    from pixelflip.evaluation.summary import headline, write_headline
    from pixelflip.models.loading import load_classifier
    from pixelflip.stage.files import read_json

    # Loaded before the report: a stage that cannot read the oracle fails before any scoring.
    oracle = load_classifier(layout.ORACLE_MODEL)

    options = params.evaluate
    classes = load_classes(layout.PREPARED_DIR)
    train_images, train_labels = load_split(layout.PREPARED_DIR, "train")
    report = ExplanationReport(
        class_names=classes, counterfactual_methods=params.counterfactuals.methods,
        attribution_methods=params.attributions.methods,
        change_tolerance=options.change_tolerance, deletion_steps=options.deletion_steps,
        batch_size=options.batch_size, random_state=params.seed,
        figure_rows=params.select.figure_images, train_images=train_images,
        train_labels=train_labels,
        autoencoders=load_class_autoencoders(layout.AUTOENCODERS_DIR, len(classes)),
        shared_autoencoder=load_shared_autoencoder(layout.AUTOENCODERS_DIR), oracle=oracle)
    compared = read_json(layout.COMPARISON_METRICS)["models"]
    names = layout.model_names(params.attention.modules)
    for position, name in enumerate(names, 1):
        progress("evaluate", model=(position, len(names), name))
        entry = report.add_model(load_classifier(layout.model_path(name)), name, compared[name])
        print(f"[evaluate] {name}: accuracy {entry['test_accuracy']:.4f}; counterfactual "
              "validity " + ", ".join(f"{method} {summary['validity']:.3f}" for method, summary
                                      in entry["counterfactuals"]["sampled"].items()), flush=True)
    table = write_report(report)
    headline_numbers = headline(
        report.per_image_table(), methods=params.counterfactuals.methods,
        accuracies={name: entry["test_accuracy"] for name, entry in report.evaluation.items()},
        data_metrics=read_json(layout.DATA_METRICS))
    write_headline(headline_numbers)
    # On the parent run too, so the MLflow runs table compares pipeline executions directly.
    log_pipeline_metrics(headline_numbers.metrics)
    print(table[["model", "set", "method", *COUNTERFACTUAL_METRICS, "median_regions"]].to_string(
        index=False, float_format=lambda value: f"{value:.4g}"), flush=True)


if __name__ == "__main__":
    run_stage("evaluate", main)
