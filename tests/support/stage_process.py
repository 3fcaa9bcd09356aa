"""A stage process for the tracking tests: opens a stage run on a project and logs to it.

Run as ``python stage_process.py <root> <stage> <mode> [<start file>]``: ``log`` logs params
and metrics and ends; ``sleep`` prints ``ready`` once the run is open, then sleeps until a
signal ends it. With a start file, the process imports MLflow, prints ``waiting`` and opens the
run only once that file exists, so that several processes open theirs at the same moment.
``PIXELFLIP_PIPELINE_ID`` and ``MLFLOW_TRACKING_URI`` come from the environment. The runs'
ids are printed as ``run <child id> <parent id>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pixelflip.tracking import runs as tracking


def main(root: str, stage: str, mode: str, start_file: str | None = None) -> None:
    if start_file is not None:
        import mlflow  # noqa: F401  (imported before the start, which should be simultaneous)

        print("waiting", flush=True)
        while not Path(start_file).exists():
            time.sleep(0.01)
    with tracking.stage_run(stage, root=Path(root), experiment="unit", uri=None, enabled=True,
                            params={"stage": stage}) as run:
        print(f"run {run.info.run_id} {run.data.tags['mlflow.parentRunId']}", flush=True)
        if mode == "sleep":
            print("ready", flush=True)
            time.sleep(120)
        for step in range(3):
            tracking.log_metrics({"loss": 1.0 / (step + 1)}, step=step)


if __name__ == "__main__":
    try:
        main(*sys.argv[1:5])
    except KeyboardInterrupt:
        sys.exit(130)  # as the stage frame ends a Ctrl-C: status 128 + SIGINT, no traceback
