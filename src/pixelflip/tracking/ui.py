"""Open the MLflow UI on the pipeline's runs: ``python -m pixelflip.tracking.ui`` (``make ui``).

MLflow 3.17's UI opens an experiment in one of two views, chosen by a switch in its sidebar
("GenAI" / "Model training") that each browser remembers, and that starts on "GenAI": there,
an experiment opens on an empty Traces or Overview page, whatever the experiment's kind tag
says. The address ``#/experiments/<id>/runs?workflowType=machine_learning`` opens the runs
table in the "Model training" view; :func:`runs_table_url` builds it and the command prints it.
Clicking "Model training" in the sidebar once makes the browser remember that view.

The command reads ``tracking`` in ``params.yaml`` (``MLFLOW_TRACKING_URI`` wins, as for the
stages), finds the experiment (creating it, marked as model training, in a new store, so the
address works before the first ``dvc repro``), prints the address and, for a local store, runs
``mlflow ui`` on it; a tracking server is already a UI, so for one it only prints the address.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import quote

#: The UI's name for its "Model training" view (its ``workflowType`` query parameter).
MODEL_TRAINING_VIEW = "machine_learning"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


def experiment_route(experiment_id: str) -> str:
    """The UI's route (the part after ``#``) of an experiment's page."""
    return f"/experiments/{experiment_id}"


def runs_table_url(base_url: str, experiment_id: str) -> str:
    """The address of an experiment's runs table, in the "Model training" view."""
    return (f"{base_url.rstrip('/')}/#{experiment_route(experiment_id)}/runs"
            f"?workflowType={MODEL_TRAINING_VIEW}")


def run_url(base_url: str, experiment_id: str, run_id: str, tab: str = "") -> str:
    """The address of a run's page: its overview, or ``tab``, for example ``model-metrics``
    (the image grid) or ``artifacts/<path>`` (one artifact, shown; a table as a table)."""
    route = f"{experiment_route(experiment_id)}/runs/{run_id}"
    if tab:
        route += "/" + quote(tab, safe="/")
    return f"{base_url.rstrip('/')}/#{route}?workflowType={MODEL_TRAINING_VIEW}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pixelflip.tracking.ui",
        description="Run the MLflow UI on this project's store and print the address of the "
                    "pipeline experiment's runs table; other options (--workers 1) go to "
                    "`mlflow ui`.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    options, mlflow_options = parser.parse_known_args(argv)

    import mlflow
    from mlflow.tracking import MlflowClient

    from pixelflip.config.params import load_params
    from pixelflip.tracking.experiment import experiment_id
    from pixelflip.tracking.runs import project_root, resolve_tracking_uri, store_root
    from pixelflip.tracking.store import (
        URI_FROM_ENVIRONMENT,
        is_http,
        opening_errors,
        probe_server,
        quiet_mlflow_loggers,
        store_lock,
    )

    quiet_mlflow_loggers()
    root = project_root()
    try:
        tracking = load_params(root / "params.yaml").tracking
        uri = resolve_tracking_uri(tracking.uri, root)
        from_environment = bool(os.environ.get(URI_FROM_ENVIRONMENT))
        probe_server(uri, from_environment=from_environment)
        mlflow.set_tracking_uri(uri)
        with opening_errors(uri, from_environment=from_environment), store_lock(uri):
            found = experiment_id(MlflowClient(), tracking.experiment,
                                  (store_root(root) / "mlartifacts").as_uri())
    except ValueError as error:  # a bad params.yaml, a store that cannot be opened
        sys.exit(f"pixelflip.tracking.ui: {error}")
    base_url = uri if is_http(uri) else f"http://{options.host}:{options.port}"
    print(f"MLflow UI, runs of experiment '{tracking.experiment}': "
          f"{runs_table_url(base_url, found)}\n(open this address; the sidebar's "
          "'Model training' switch keeps the UI on runs)", flush=True)
    if is_http(uri):
        return
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", options.host, "--port", str(options.port), *mlflow_options]
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main()
