"""Tracking servers that cannot be reached, are not MLflow, or vanish mid-stage: against a real
``mlflow server`` subprocess and real sockets. Every failure is one line, within seconds."""

import http.server
import os
import socket
import threading

import pytest
from support.mlflow_server import MlflowServer, free_port
from support.tracking_store import make_project

from pixelflip.tracking import epochs as tracking_epochs
from pixelflip.tracking import model_registry
from pixelflip.tracking import runs as tracking
from pixelflip.tracking.outage import TrackingFailedError
from pixelflip.tracking.store import HTTP_SETTINGS, TrackingUnavailableError


@pytest.fixture()
def store(tmp_path, monkeypatch):
    # stage_run lowers MLflow's HTTP settings for the process; undo that after each test.
    for name in HTTP_SETTINGS:
        monkeypatch.setenv(name, "unset-by-the-test")
        monkeypatch.delenv(name)
    (tmp_path / "project").mkdir()
    return make_project(tmp_path / "project", monkeypatch)


def open_stage(root, uri):
    return tracking.stage_run("train", root=root, experiment="unit", uri=uri, enabled=True,
                              params={"train.epochs": 2})


def assert_one_line(message, uri):
    assert "\n" not in message and uri in message
    assert "tracking.enabled: false in params.yaml" in message


class _Answering(http.server.BaseHTTPRequestHandler):
    """A web server that is not MLflow: every request gets ``server.status``."""

    def do_GET(self):
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture()
def web_server():
    def serve(status):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
        server.status = status
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    servers = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("server", ["refused", "unknown_host", "not_found", "error",
                                    "silent"])
def test_an_unusable_server_is_one_line_before_the_stage_works(
        server, store, web_server, silent_port):
    uri = {"refused": f"http://127.0.0.1:{free_port()}",
           "unknown_host": "http://pixelflip-no-such-host.invalid:5000",
           "not_found": web_server(404) if server == "not_found" else None,
           "error": web_server(500) if server == "error" else None,
           "silent": f"http://127.0.0.1:{silent_port}"}[server]

    with pytest.raises(TrackingUnavailableError) as error, open_stage(store, uri):
        pytest.fail("the stage body ran without a tracking server")

    message = str(error.value)
    assert_one_line(message, uri)
    assert "start the server" in message and "MLFLOW_TRACKING_URI" not in message
    expected = {"refused": "connection refused", "not_found": "HTTP 404", "error": "HTTP 500",
                "silent": "no answer within"}.get(server)
    if expected:
        assert expected in message
    assert not (store / "mlflow.db").exists()


def test_a_uri_from_the_environment_says_to_unset_it(store, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingUnavailableError) as error, open_stage(store, None):
        pytest.fail("the stage body ran without a tracking server")
    assert_one_line(str(error.value), uri)
    assert "or unset MLFLOW_TRACKING_URI" in str(error.value)


@pytest.fixture()
def mlflow_server(tmp_path):
    with MlflowServer(tmp_path / "server") as server:
        yield server


@pytest.mark.slow  # starting the MLflow server takes most of it
def test_a_server_that_vanishes_mid_stage_switches_tracking_off(
        store, mlflow_server, tmp_path, capfd):
    from mlflow.tracking import MlflowClient

    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "history.csv").write_text("epoch,loss\n1,0.5\n")
    body_finished = False
    with pytest.raises(TrackingFailedError) as error, open_stage(store, mlflow_server.uri) as run:
        tracking.log_metrics({"loss": 0.5}, step=1)
        server_client = MlflowClient(mlflow_server.uri)
        assert [point.step for point in
                server_client.get_metric_history(run.info.run_id, "loss")] == [1]
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
        mlflow_server.kill()
        # None of these raise: the first failure switches tracking off, the rest do nothing.
        tracking.log_metrics({"loss": 0.4}, step=2)
        tracking.log_metrics({"loss": 0.3}, step=3)
        tracking.log_params({"late": 1})
        tracking.log_artifacts(plots, artifact_path="plots")
        assert tracking_epochs.log_epoch_history({"epoch": [1, 2], "loss": [0.5, 0.4]}) == []
        assert tracking_epochs.epoch_callbacks() == []
        assert model_registry.register_version(f"runs:/{run.info.run_id}/model", "m") is None
        body_finished = True

    assert body_finished
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert_one_line(message, mlflow_server.uri)
    assert "outputs (and a trained model) are kept" in message and "rerun dvc repro" in message
    output = capfd.readouterr()
    warnings = [line for line in (output.out + output.err).splitlines() if "warning" in line]
    assert warnings == [next(line for line in warnings if line.startswith("[tracking] warning"))]
    assert mlflow_server.uri in warnings[0] and "log metrics" in warnings[0]
    assert "Traceback" not in output.err


def test_a_user_setting_of_mlflow_http_retries_wins(store, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "33")
    with open_stage(store, mlflow_server.uri) as run:
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "33"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
        tracking.log_metrics({"accuracy": 0.9})
    from mlflow.tracking import MlflowClient

    finished = MlflowClient(mlflow_server.uri).get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.metrics == {"accuracy": 0.9}
