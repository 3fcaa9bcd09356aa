"""MLflow tracking: one pipeline execution is one parent run, each stage a child run.

DVC runs every stage as its own process, so the stages of one ``dvc repro`` find their shared
parent run through a *pipeline id*: the id of the ``dvc`` process they descend from (or
``PIXELFLIP_PIPELINE_ID`` when set). The first stage that runs creates the parent; later ones
attach to it. A stage run outside DVC gets a parent of its own.

Every run carries the git commit, ``DVC_EXP_NAME`` when DVC sets it, and the sha256 of the raw
data archive, so a run in the UI leads back to the exact code, experiment and data. The parent
run also holds the whole ``params.yaml`` as params (:mod:`pixelflip.tracking.parent`) and the
pipeline's summary metrics (:func:`log_pipeline_metrics`), so the runs table compares pipeline
executions by their parent rows; the experiment is marked as model training
(:mod:`pixelflip.tracking.experiment`).

Every PNG a stage logs from ``plots/`` is also an MLflow image (:mod:`pixelflip.tracking.images`)
and the counterfactuals stage logs a table per model, image set and method
(:mod:`pixelflip.tracking.tables`).

Training stages also record, in their child run: MLflow's system metrics (``system/...``, GPU
ones only where NVML finds a GPU), one point per epoch of every Keras metric (step = the 1-based
epoch number, epochs restored from a backup included), and the model, registered as a version of
one registered model (:mod:`pixelflip.tracking.model_registry` logs and registers models). Every helper here is a no-op when no run is
active, so a stage with tracking disabled runs the same code and writes no store.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pixelflip.stage import layout
from pixelflip.stage.console import ending_signals
from pixelflip.stage.files import read_json
from pixelflip.tracking.experiment import experiment_id as get_experiment_id
from pixelflip.tracking.images import log_figures
from pixelflip.tracking.liveness import PARENT_TAG, end_dead_runs, process_tags
from pixelflip.tracking.outage import failed, failure_error, tolerated, watching
from pixelflip.tracking.parent import log_new_params, loggable_params, pipeline_params
from pixelflip.tracking.store import (
    URI_FROM_ENVIRONMENT,
    lower_http_retries,
    opening_errors,
    probe_server,
    quiet_mlflow_loggers,
    store_lock,
    tracking_errors,
)

PIPELINE_ID_TAG = "pixelflip.pipeline_id"
STAGE_TAG = "pixelflip.stage"
DATA_SHA256_TAG = "pixelflip.data_sha256"
EXP_NAME_TAG = "dvc.exp_name"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
#: Seconds between two samples of MLflow's system metrics (MLflow's own default is 10).
SYSTEM_METRICS_INTERVAL_S = 2.0


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``dvc.yaml``, searched upwards from ``start`` (default: cwd)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return here


def store_root(root: Path) -> Path:
    """Where the default MLflow store lives for a pipeline at ``root``: the DVC project's root.

    A pipeline folder below the root (``pipelines/cats-vs-dogs``) shares the project's store, so
    the MLflow UI shows both pipelines side by side. ``dvc exp run --temp`` and queued
    experiments run in a copy under ``.dvc/tmp/exps/``; their runs belong in the real project's
    store, not in a copy that DVC deletes afterwards.
    """
    parts = root.parts
    for index in range(len(parts) - 3):
        if parts[index:index + 4] == (".dvc", "tmp", "exps", parts[index + 3]):
            return Path(*parts[:index])
    for folder in (root, *root.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return root


def resolve_tracking_uri(configured: str | None, root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` beats ``tracking.uri`` beats the SQLite store at the repo root."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if configured:
        return configured
    return f"sqlite:///{store_root(root) / 'mlflow.db'}"


def pipeline_id() -> str:
    """Identify the pipeline execution this process belongs to (see the module docstring)."""
    if os.environ.get("PIXELFLIP_PIPELINE_ID"):
        return os.environ["PIXELFLIP_PIPELINE_ID"]
    import psutil

    process = psutil.Process()
    for ancestor in process.parents():
        try:
            command = ancestor.cmdline()
        except psutil.Error:
            continue
        if _is_dvc_command(command):
            return f"{socket.gethostname()}:{ancestor.pid}:{int(ancestor.create_time())}"
    return f"{socket.gethostname()}:{process.pid}:{int(process.create_time())}"


def _is_dvc_command(command: list[str]) -> bool:
    # `dvc repro`, `python -m dvc repro` and `/venv/bin/dvc exp run` all count.
    head = [Path(part).name for part in command[:3]]
    return "dvc" in head and any(word in command for word in ("repro", "exp", "exec-run"))


def git_commit(root: Path) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def data_sha256(root: Path) -> str | None:
    source = root / layout.SOURCE_JSON
    return read_json(source).get("sha256") if source.exists() else None


def run_tags(root: Path) -> dict[str, str]:
    """Tags every run of this pipeline carries."""
    tags = {PIPELINE_ID_TAG: pipeline_id()}
    for key, value in ((GIT_COMMIT_TAG, git_commit(root)),
                       (EXP_NAME_TAG, os.environ.get("DVC_EXP_NAME")),
                       (DATA_SHA256_TAG, data_sha256(root))):
        if value:
            tags[key] = value
    return tags


def flatten(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"epochs": 3}`` under prefix ``train`` becomes ``{"train.epochs": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(flatten(name, value))
        else:
            flat[name] = value
    return flat


@contextlib.contextmanager
def stage_run(stage: str, *, root: Path, experiment: str, uri: str | None, enabled: bool,
              params: Mapping[str, Any], log_system_metrics: bool = False) -> Iterator[Any]:
    """Open the child run of ``stage`` under this pipeline's parent run.

    Yields the active ``mlflow.ActiveRun`` (or None when tracking is disabled). The parent is
    marked finished after every stage, so it ends in the state of the last stage that ran.

    ``log_system_metrics`` starts MLflow's system metrics monitor on the child run: CPU, memory,
    disk and network, plus per-GPU utilization, memory and power where NVML (``nvidia-ml-py``)
    finds a GPU; on a machine without one MLflow skips the GPU metrics with an INFO line. A
    sample is logged every :data:`SYSTEM_METRICS_INTERVAL_S` seconds (unless
    ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` says otherwise), so a stage shorter than that
    gets none. ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true`` turns the monitor on for every stage.

    The store is made safe to share and to lose (see :mod:`~pixelflip.tracking.store`,
    :mod:`~pixelflip.tracking.outage` and :mod:`~pixelflip.tracking.liveness`): a SQLite store
    is opened under a file lock, a server is probed first, a store failing mid-stage switches
    tracking off until the body is done, and a signal ends the runs as ``KILLED``.

    Raises
    ------
    TrackingUnavailableError
        Before the body runs, when the store cannot be opened (server unreachable, not an
        MLflow server, unusable SQLite file).
    TrackingFailedError
        After the body finished, when the store failed while it ran.
    StageInterrupted
        When SIGTERM, SIGINT or SIGHUP stopped the stage (a ``SystemExit``, status 128 + signal).
    """
    if not enabled:
        yield None
        return
    import mlflow
    from mlflow.tracking import MlflowClient

    quiet_mlflow_loggers()
    tracking_uri = resolve_tracking_uri(uri, root)
    from_environment = bool(os.environ.get(URI_FROM_ENVIRONMENT))
    lower_http_retries(tracking_uri)
    probe_server(tracking_uri, from_environment=from_environment)
    mlflow.set_tracking_uri(tracking_uri)
    with opening_errors(tracking_uri, from_environment=from_environment):
        # Creating and migrating the store (which MlflowClient() does) and the get-or-create
        # steps race between processes; one at a time.
        with store_lock(tracking_uri):
            client = MlflowClient()
            # Artifacts beside the SQLite store, not in whatever folder a stage ran from.
            experiment_id = get_experiment_id(
                client, experiment, (store_root(root) / "mlartifacts").as_uri())
            end_dead_runs(client, experiment_id)
            tags = run_tags(root)
            parent_id = _parent_run_id(client, experiment_id, tags)
            log_new_params(client, parent_id, pipeline_params(root))
        with _system_metrics_sampling():
            # None rather than False, so that MLflow's own switch still works for other stages.
            run = mlflow.start_run(experiment_id=experiment_id, run_name=stage,
                                   parent_run_id=parent_id,
                                   tags={**tags, STAGE_TAG: stage, **process_tags()},
                                   log_system_metrics=True if log_system_metrics else None)
    status = "FAILED"
    with watching(tracking_uri, from_environment=from_environment):
        try:
            with ending_signals():
                log_params(params)
                yield run
                # Download is the stage that creates the archive; its digest exists only now.
                digest = data_sha256(root)
                if digest:
                    with tolerated("tag the data digest"):
                        mlflow.set_tag(DATA_SHA256_TAG, digest)
                        client.set_tag(parent_id, DATA_SHA256_TAG, digest)
            status = "FINISHED"
        except (KeyboardInterrupt, SystemExit):
            status = "KILLED"
            raise
        finally:
            _end_runs(client, run.info.run_id, parent_id, status)
        error = failure_error()
    if error is not None:
        raise error


def _end_runs(client: Any, run_id: str, parent_id: str, status: str) -> None:
    """End the child run and the parent run in ``status``.

    After a failure of the store the child was already ended locally; both runs are still
    marked ``FAILED`` if the store answers again, silently, since the failure was reported.
    """
    import mlflow

    with tolerated("end the run"):
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status=status)
    if failed():
        with contextlib.suppress(*tracking_errors()):
            for ended in (run_id, parent_id):
                client.set_terminated(ended, status="FAILED")
        return
    with tolerated("end the pipeline's run"):
        client.set_terminated(parent_id, status=status, end_time=int(time.time() * 1000))


@contextlib.contextmanager
def _system_metrics_sampling() -> Iterator[None]:
    """Sample system metrics every few seconds while a run starts, then restore the settings.

    MLflow reads its sampling settings from the environment when the monitor is created (in
    ``start_run``); its default of one sample every 10 s leaves short stages with nothing. A
    setting already in the environment wins; what this sets is unset again afterwards.
    """
    import mlflow
    from mlflow.environment_variables import (
        MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING,
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL,
    )

    set_interval = not MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL.defined
    set_samples = not MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING.defined
    if set_interval:
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    if set_samples:
        mlflow.set_system_metrics_samples_before_logging(1)
    try:
        yield
    finally:
        if set_interval:
            mlflow.set_system_metrics_sampling_interval(None)
        if set_samples:
            mlflow.set_system_metrics_samples_before_logging(None)


def _parent_run_id(client: Any, experiment_id: str, tags: dict[str, str]) -> str:
    pipeline = tags[PIPELINE_ID_TAG]
    found = client.search_runs([experiment_id], f"tags.`{PIPELINE_ID_TAG}` = '{pipeline}'",
                               max_results=50)
    parents = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
    if parents:
        return parents[0].info.run_id
    exp_name = tags.get(EXP_NAME_TAG)
    name = f"{exp_name or 'pipeline'} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    run = client.create_run(experiment_id, run_name=name, tags={**tags, "pixelflip.kind": "pipeline"})
    return run.info.run_id


def log_params(params: Mapping[str, Any]) -> None:
    """Log ``params`` to the active run, if any."""
    import mlflow

    if mlflow.active_run() is not None and params:
        with tolerated("log params"):
            mlflow.log_params(loggable_params(params))


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of ``metrics`` (nested mappings flattened), as MLflow can log them:
    None, NaN and booleans left out, characters MLflow refuses in a name replaced by ``_``."""
    # Data reasons ("palette to RGB, gif ...") have commas, which MLflow refuses.
    return {re.sub(r"[^\w\-. :/]", "_", key): float(value)
            for key, value in flatten("", metrics).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            and not math.isnan(value)}


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the numeric entries of ``metrics`` to the active run, if any (None/NaN skipped)."""
    import mlflow

    if mlflow.active_run() is None:
        return
    numeric = numeric_metrics(metrics)
    if numeric:
        with tolerated("log metrics"):
            mlflow.log_metrics(numeric, step=step)


def log_pipeline_metrics(metrics: Mapping[str, float]) -> None:
    """Log the pipeline's summary metrics to the parent run of the active stage run, if any.

    ``metrics`` is a flat mapping of name to number (``{"accuracy.base": 0.98,
    "elastic_net.validity": 0.9, "elastic_net.s_per_image": 0.4}``; nested mappings are
    flattened, None and NaN skipped, as :func:`log_metrics` does). They land on the pipeline's
    parent run, at step 0, so the experiment's runs table compares pipeline executions by them;
    logging a name again adds a newer value, which the table shows. An active run that is not a
    stage run (no parent) gets them itself.
    """
    import mlflow

    active = mlflow.active_run()
    if active is None:
        return
    numeric = numeric_metrics(metrics)
    if not numeric:
        return
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    target = active.data.tags.get(PARENT_TAG, active.info.run_id)
    timestamp = int(time.time() * 1000)
    with tolerated("log the pipeline's metrics"):
        MlflowClient().log_batch(target, metrics=[Metric(key, value, timestamp, 0)
                                                  for key, value in numeric.items()])


def log_artifacts(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    """Log a file or a folder to the active run, if any.

    The figures among them (PNGs under ``plots/``) are also logged as MLflow images, keyed by
    their path under ``plots/`` (:mod:`pixelflip.tracking.images`), for the run's image grid.
    """
    import mlflow

    if mlflow.active_run() is None:
        return
    path = Path(path)
    with tolerated("log artifacts"):
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        elif path.exists():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)
    # A failure above ended the run; then there is nothing to log the images to.
    if mlflow.active_run() is not None:
        with tolerated("log figures as images"):
            log_figures(path)
