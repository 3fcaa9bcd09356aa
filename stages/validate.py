"""DVC stage `validate`: inspect every archive member, clean, split and pack the images."""

from pixelflip import layout, tracking
from pixelflip.io import read_json, write_json
from pixelflip.stage import StageError, run_stage


def main(params):
    from pixelflip.data.expectations import check_manifest
    from pixelflip.data.prepare import prepare_dataset, read_manifest, summarize_manifest

    archive = layout.RAW_DIR / read_json(layout.SOURCE_JSON)["archive"]
    prepared = prepare_dataset(
        archive, layout.PREPARED_DIR,
        image_size=params.data.image_size, color_mode=params.data.color_mode,
        val_fraction=params.validate.val_fraction, test_fraction=params.validate.test_fraction,
        min_side=params.validate.min_side, random_state=params.seed,
    )
    manifest = read_manifest(layout.MANIFEST_CSV)
    report = check_manifest(manifest, layout.DATA_DOCS_DIR, classes=prepared.classes,
                            min_side=params.validate.min_side)
    metrics = {
        "classes": len(prepared.classes),
        **summarize_manifest(manifest),
        "expectations": {"success": report.success, **report.statistics},
    }
    write_json(layout.METRICS_DIR / "data.json", metrics)
    tracking.log_metrics(metrics)
    tracking.log_artifacts(layout.MANIFEST_CSV, artifact_path="data")
    tracking.log_artifacts(layout.DATA_DOCS_DIR, artifact_path="data_docs")
    print(f"[validate] {prepared.status_counts} -> splits {prepared.split_sizes}; "
          f"Data Docs: {report.docs_index}", flush=True)
    if not report.success:
        failed = [f"{item['expectation']}({item['column']})" for item in report.results
                  if not item["success"]]
        raise StageError(f"the cleaned data breaks expectations {', '.join(failed)}; "
                         f"open {report.docs_index} for the failing rows")


if __name__ == "__main__":
    run_stage("validate", main, sections=("data", "validate"))
