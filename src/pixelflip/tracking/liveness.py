"""Stage runs that end with their process: killed stages never stay ``RUNNING`` in MLflow.

- A stage stopped by SIGTERM, SIGINT or SIGHUP ends its child run (and the pipeline's parent)
  as ``KILLED`` before the process exits: ``stage_run`` marks them on ``KeyboardInterrupt`` and
  ``SystemExit``, and :func:`pixelflip.stage.console.ending_signals` makes sure SIGTERM and
  SIGHUP raise one (``StageInterrupted``, a ``SystemExit`` with status 128 + signal number)
  instead of ending the process on the spot.
- SIGKILL cannot be caught, so every child run records the process that runs it
  (:func:`process_tags`: host, pid and the process's start time, which tells a reused pid
  apart) and each new stage run first ends, as ``KILLED``, the ``RUNNING`` runs of this host
  whose process is gone (:func:`end_dead_runs`).
"""

from __future__ import annotations

import socket
from typing import Any

HOST_TAG = "pixelflip.host"
PID_TAG = "pixelflip.pid"
PROCESS_STARTED_TAG = "pixelflip.process_started"
PARENT_TAG = "mlflow.parentRunId"
# Process start times are compared with this slack: psutil derives them from clock ticks.
_START_TIME_SLACK_S = 1.0


def process_tags() -> dict[str, str]:
    """Tags naming the process that runs a stage: host, pid and when the process started."""
    import psutil

    process = psutil.Process()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(process.pid),
            PROCESS_STARTED_TAG: f"{process.create_time():.3f}"}


def process_alive(tags: dict[str, str]) -> bool:
    """Whether the process named by a run's :func:`process_tags` still runs.

    A run of another host, or without the tags, counts as alive: nobody here can tell.
    """
    import psutil

    if tags.get(HOST_TAG) != socket.gethostname():
        return True
    try:
        pid, started = int(tags[PID_TAG]), float(tags[PROCESS_STARTED_TAG])
    except (KeyError, ValueError):
        return True
    try:
        return abs(psutil.Process(pid).create_time() - started) < _START_TIME_SLACK_S
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # a process of another user: it exists
        return True


def end_dead_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark the ``RUNNING`` stage runs whose process died (SIGKILL, power loss) ``KILLED``.

    A parent run whose every running child is dead is marked ``KILLED`` too; a parent with a
    live child is left to that child. Returns the ids of the runs it ended.
    """
    running = _all_runs(client, experiment_id, "attributes.status = 'RUNNING'")
    children = [run for run in running if PARENT_TAG in run.data.tags]
    dead = [run for run in children if not process_alive(run.data.tags)]
    alive_parents = {run.data.tags[PARENT_TAG] for run in children if run not in dead}
    running_ids = {run.info.run_id for run in running}
    orphaned = ({run.data.tags[PARENT_TAG] for run in dead} & running_ids) - alive_parents
    ended = [run.info.run_id for run in dead] + sorted(orphaned)
    for run_id in ended:
        client.set_terminated(run_id, status="KILLED")
    return ended


def _all_runs(client: Any, experiment_id: str, query: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
