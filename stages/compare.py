"""DVC stage `compare`: the base CNN and every attention module in one table, best one marked."""

from pixelflip.stage import layout
from pixelflip.stage.files import atomic_path, read_json, write_json
from pixelflip.stage.frame import run_stage
from pixelflip.stage.timings import split_timing_columns
from pixelflip.tracking.model_registry import update_best_alias
from pixelflip.tracking.runs import data_sha256, log_artifacts, log_metrics, project_root


def main(params):
    from pixelflip.evaluation.comparison import best_model, comparison_table
    from pixelflip.plots.common import save_figure
    from pixelflip.plots.comparison import plot_comparison_table

    names = layout.model_names(params.attention.modules)
    # validate counted the test split; every model was tested on all of it.
    test_images = read_json(layout.DATA_METRICS)["split_counts"]["test"]
    table = comparison_table({name: {**read_json(layout.metrics_path(name)),
                                     **read_json(layout.timings_path(name))} for name in names},
                             test_images)
    best = best_model(table, "val_accuracy")
    # The seconds apart: everything else a rerun on the same models writes again byte for byte.
    results, timings = split_timing_columns(table, ["model"])
    layout.COMPARISON_DIR.mkdir(parents=True, exist_ok=True)
    for path, frame in ((layout.COMPARISON_DIR / "models.csv", results),
                        (layout.COMPARISON_TIMINGS_TABLE, timings)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.6g")
    save_figure(plot_comparison_table(results, best_by="val_accuracy"),
                layout.COMPARISON_DIR / "models.png")
    summary = {"best_model": best, "models": results.set_index("model").to_dict(orient="index")}
    write_json(layout.COMPARISON_METRICS, summary)
    write_json(layout.COMPARISON_TIMINGS,
               {"models": timings.set_index("model").to_dict(orient="index")})
    print(table.to_string(index=False, float_format=lambda value: f"{value:.4g}"), flush=True)
    print(f"[compare] best by validation accuracy: {best}", flush=True)
    log_metrics(table.set_index("model").to_dict(orient="index"))
    log_artifacts(layout.COMPARISON_DIR, artifact_path="comparison")
    log_artifacts(layout.COMPARISON_TIMINGS_TABLE, artifact_path="timings")
    version = update_best_alias(params.tracking.registered_model, metric="val_accuracy",
                                alias="best", data_sha256=data_sha256(project_root()))
    if version:
        print(f"[compare] MLflow registry alias 'best' -> version {version}", flush=True)


if __name__ == "__main__":
    run_stage("compare", main)
