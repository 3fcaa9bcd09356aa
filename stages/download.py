"""DVC stage `download`: turn the source named in `params.data` into one zip of class folders.

The `kaggle` source keeps the zip as downloaded and reuses it when it is already there intact.
"""

from pixelflip.stage import layout
from pixelflip.stage.frame import run_stage
from pixelflip.tracking.runs import log_artifacts, log_metrics


def main(params):
    from pixelflip.data.archive import ArchiveLimits
    from pixelflip.data.sources import download_source

    data, validate = params.data, params.validate
    # The zip-bomb limits apply wherever an archive is read: here to a zip given as the source
    # and to the archive written, in validate to every member again.
    limits = ArchiveLimits.of(validate.max_compression_ratio, validate.max_uncompressed_gb)
    record = download_source(data.source, layout.RAW_DIR, path=data.path,
                             dataset=data.kaggle.dataset, limits=limits)
    print(f"[download] {record['num_images']} images in {len(record['class_counts'])} classes "
          f"({record['num_files']} files) -> {layout.RAW_DIR / record['archive']} "
          f"(sha256 {record['sha256'][:12]})", flush=True)
    log_metrics({"num_images": record["num_images"], "archive_bytes": record["bytes"]})
    log_artifacts(layout.SOURCE_JSON)


if __name__ == "__main__":
    run_stage("download", main)
