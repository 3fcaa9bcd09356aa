"""DVC stage `download`: turn the source named in `params.data` into one zip of class folders."""

from pixelflip import layout, tracking
from pixelflip.stage import run_stage


def main(params):
    from pixelflip.data.sources import download_source

    data = params.data
    record = download_source(data.source, layout.RAW_DIR, path=data.path,
                             max_images_per_class=data.max_images_per_class,
                             random_state=params.seed)
    print(f"[download] {record['num_images']} files in {len(record['class_counts'])} classes -> "
          f"{layout.RAW_DIR / record['archive']} (sha256 {record['sha256'][:12]})", flush=True)
    tracking.log_metrics({"num_images": record["num_images"], "archive_bytes": record["bytes"]})
    tracking.log_artifacts(layout.SOURCE_JSON)


if __name__ == "__main__":
    run_stage("download", main, sections=("data",))
