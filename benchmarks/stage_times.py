"""Wall time of every stage of the latest pipeline run, read from the project's MLflow store.

Every stage logs one MLflow run (tagged with its stage and its pipeline execution) under one
parent run per `dvc repro`; the start and end times MLflow recorded are the stage's wall time,
TensorFlow start-up included. Prints a Markdown table, slowest stages marked by their share.

    python benchmarks/stage_times.py --experiment pixelflip-cats-vs-dogs
    python benchmarks/stage_times.py --experiment pixelflip --store sqlite:///mlflow.db
    python benchmarks/stage_times.py --per-stage   # each stage's latest run, whichever repro

``--per-stage`` is for a pipeline built by several ``dvc repro`` calls (one stopped, then
resumed): every stage's latest finished run is the one whose outputs ``dvc.lock`` records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pixelflip.tracking.runs import PIPELINE_ID_TAG, STAGE_TAG

ROOT = Path(__file__).resolve().parents[1]


def latest_stage_seconds(store: str, experiment: str, *, per_stage: bool = False
                         ) -> tuple[str, dict[str, float]]:
    """``(pipeline id, {stage: seconds})`` of the latest pipeline execution of ``experiment``.

    Stages are in the order they started; a stage that ran more than once in that execution
    (a retried stage) counts its last run. With ``per_stage``, every stage's latest finished
    run of any execution (the pipeline id is then ``"latest per stage"``).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"{store} has no experiment {experiment!r}; run the pipeline first or "
                         "name another with --experiment")
    runs = client.search_runs([found.experiment_id], filter_string="attributes.status = "
                              "'FINISHED'", order_by=["attributes.start_time DESC"],
                              max_results=2000)
    stage_runs = [run for run in runs if STAGE_TAG in run.data.tags]
    if not stage_runs:
        raise SystemExit(f"experiment {experiment!r} has no finished stage runs")
    if per_stage:
        pipeline = "latest per stage"
        latest: dict[str, object] = {}
        for run in stage_runs:  # newest first
            latest.setdefault(run.data.tags[STAGE_TAG], run)
        chosen = sorted(latest.values(), key=lambda run: run.info.start_time)
    else:
        pipeline = stage_runs[0].data.tags.get(PIPELINE_ID_TAG)
        chosen = sorted((run for run in stage_runs
                         if run.data.tags.get(PIPELINE_ID_TAG) == pipeline),
                        key=lambda run: run.info.start_time)
    return pipeline, {run.data.tags[STAGE_TAG]: (run.info.end_time - run.info.start_time) / 1000
                      for run in chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="pixelflip-cats-vs-dogs")
    parser.add_argument("--store", default=f"sqlite:///{ROOT / 'mlflow.db'}")
    parser.add_argument("--per-stage", action="store_true",
                        help="each stage's latest finished run, across dvc repro calls")
    arguments = parser.parse_args()
    pipeline, seconds = latest_stage_seconds(arguments.store, arguments.experiment,
                                             per_stage=arguments.per_stage)
    total = sum(seconds.values())
    print(f"pipeline execution {pipeline} of experiment {arguments.experiment}\n")
    print("| stage | wall time | share |\n|---|---:|---:|")
    for stage, value in seconds.items():
        print(f"| {stage} | {value / 60:.1f} min ({value:.0f} s) | {value / total:.0%} |")
    print(f"| all stages | {total / 60:.1f} min | 100% |")


if __name__ == "__main__":
    main()
