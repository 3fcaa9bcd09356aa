"""DVC stage `evaluate`: model quality and explanation quality side by side, per model."""

import pandas as pd

from pixelflip import layout, tracking
from pixelflip.io import atomic_path, write_json
from pixelflip.stage import run_stage


def main(params):
    from pixelflip.data.loaders import make_dataset
    from pixelflip.explain.metrics import counterfactual_metrics, summarize_counterfactuals
    from pixelflip.explain.result import CounterfactualResult
    from pixelflip.models.training import count_parameters, evaluate_classifier, load_classifier
    from pixelflip.plots import plot_model_comparison, save_figure

    test = make_dataset(layout.PREPARED_DIR, "test", batch_size=params.evaluate.batch_size,
                        shuffle=False, random_state=params.seed)
    evaluation, rows = {}, []
    for name in layout.model_names(params.attention.modules):
        model = load_classifier(layout.model_path(name))
        result = CounterfactualResult.load(layout.COUNTERFACTUALS_DIR / f"{name}.npz")
        explained = summarize_counterfactuals(counterfactual_metrics(
            result, change_tolerance=params.counterfactuals.change_tolerance))
        quality = evaluate_classifier(model, test)
        evaluation[name] = {
            "test_accuracy": quality["accuracy"],
            "test_loss": quality["loss"],
            "parameters": count_parameters(model)["total"],
            "counterfactuals": explained,
        }
        rows.append({"model": name, "test_accuracy": quality["accuracy"],
                     "test_loss": quality["loss"], **{key: explained.get(key) for key in (
                         "validity", "median_l1", "median_l2", "median_l0",
                         "mean_seconds")}})
        print(f"[evaluate] {name}: accuracy {quality['accuracy']:.4f}, "
              f"counterfactual validity {explained['validity']:.3f}", flush=True)
    write_json(layout.METRICS_DIR / "evaluation.json", evaluation)
    table = pd.DataFrame(rows)
    plots_dir = layout.PLOTS_DIR / "evaluate"
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(plots_dir / "models.csv") as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    save_figure(plot_model_comparison(table, ["test_accuracy", "validity"]),
                plots_dir / "models.png")
    tracking.log_metrics(evaluation)
    tracking.log_artifacts(plots_dir, artifact_path="plots")
    tracking.log_artifacts(layout.METRICS_DIR / "evaluation.json")


if __name__ == "__main__":
    run_stage("evaluate", main, sections=("evaluate",))
