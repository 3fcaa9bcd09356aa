"""DVC stage `validate`: inspect every archive member, clean, split and pack the images."""

from pixelflip.stage import layout
from pixelflip.stage.files import write_json
from pixelflip.stage.frame import StageError, run_stage
from pixelflip.stage.inputs import read_json_input, rebuild_hint
from pixelflip.tracking.runs import log_artifacts, log_metrics


def main(params):
    from pixelflip.data.archive import ArchiveLimits
    from pixelflip.data.expectations import check_manifest
    from pixelflip.data.prepare import (
        SplitSettings,
        prepare_dataset,
        read_manifest,
        summarize_manifest,
    )
    from pixelflip.data.scan import InspectionSettings
    from pixelflip.data.subset import MemberSelection

    data, validate = params.data, params.validate
    record = read_json_input(layout.SOURCE_JSON)
    if not isinstance(record, dict) or not isinstance(record.get("archive"), str):
        raise StageError(f"{layout.SOURCE_JSON} names no archive; "
                         f"{rebuild_hint(layout.SOURCE_JSON)}.")
    archive = layout.RAW_DIR / record["archive"]
    prepared = prepare_dataset(
        archive, layout.PREPARED_DIR,
        inspection=InspectionSettings(image_size=data.image_size, color_mode=data.color_mode,
                                      min_side=validate.min_side,
                                      max_pixels=validate.max_pixels),
        split=SplitSettings(val_fraction=validate.val_fraction,
                            test_fraction=validate.test_fraction),
        selection=MemberSelection(classes=data.classes,
                                  max_images_per_class=data.max_images_per_class),
        limits=ArchiveLimits.of(validate.max_compression_ratio, validate.max_uncompressed_gb),
        workers=validate.workers, random_state=params.seed,
    )
    manifest = read_manifest(layout.MANIFEST_CSV)
    report = check_manifest(manifest, layout.DATA_DOCS_DIR, classes=prepared.classes,
                            min_side=validate.min_side, max_pixels=validate.max_pixels,
                            max_class_ratio=validate.max_class_ratio)
    summary = summarize_manifest(manifest)
    metrics = {"classes": len(prepared.classes), **summary, "expectations": report.statistics}
    write_json(layout.DATA_METRICS, metrics)
    log_metrics(metrics)
    log_artifacts(layout.MANIFEST_CSV, artifact_path="data")
    log_artifacts(layout.DATA_DOCS_DIR, artifact_path="data_docs")
    print(f"[validate] {prepared.status_counts} -> splits {prepared.split_sizes}; "
          f"Data Docs: {report.docs_index}", flush=True)
    if not report.raw.success:
        print(f"[validate] the raw archive had defects, handled as the manifest says: "
              f"{summary['reason_counts']}", flush=True)
    if not report.success:
        raise StageError(report.failure_message())

if __name__ == "__main__":
    run_stage("validate", main)
