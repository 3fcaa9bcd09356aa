"""The SQLite store shared by concurrent stage processes, and stage runs ended by signals:
real processes on a real store, no mocks."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.tracking_store import make_project, store_client

from pixelflip.tracking import liveness
from pixelflip.tracking import runs as tracking
from pixelflip.tracking.store import TrackingUnavailableError

STAGE_PROCESS = Path(__file__).resolve().parents[2] / "support" / "stage_process.py"
#: Generous: a stage process that has not ended by then hangs.
PROCESS_TIMEOUT_S = 240


@pytest.fixture()
def store(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch)


def start_stage(root, stage, mode, *, pipeline="test-pipeline-1", start_file=None):
    command = [sys.executable, str(STAGE_PROCESS), str(root), stage, mode]
    if start_file is not None:
        command.append(str(start_file))
    return subprocess.Popen(command, env={**os.environ, "PIXELFLIP_PIPELINE_ID": pipeline},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(process, expected):
    """Lines of ``process``'s stdout up to the one equal to ``expected`` (which must come)."""
    lines = []
    while (line := process.stdout.readline()) != "":
        lines.append(line.strip())
        if lines[-1] == expected:
            return lines
    raise AssertionError(f"stage process ended before {expected!r}: {process.stderr.read()}")


def run_ids(lines):
    """``(child id, parent id)`` from the ``run <child> <parent>`` line of a stage process."""
    return tuple(next(line for line in lines if line.startswith("run ")).split()[1:])


def experiment_runs(root):
    client = store_client(root)
    return client.search_runs([client.get_experiment_by_name("unit").experiment_id])


@pytest.mark.slow  # mostly each process importing MLflow, on few cores
@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_stages_on_a_fresh_store_all_succeed(processes, store, tmp_path):
    start_file = tmp_path / "start"
    # Two pipelines; with four processes two stages of each race for their shared parent too.
    children = [start_stage(store, f"stage-{index}", "log", pipeline=f"pipeline-{index % 2}",
                            start_file=start_file) for index in range(processes)]
    for child in children:
        read_until(child, "waiting")
    assert not (store / "mlflow.db").exists()
    start_file.touch()
    outcomes = [child.communicate(timeout=PROCESS_TIMEOUT_S) for child in children]

    for child, (_, stderr) in zip(children, outcomes):
        assert child.returncode == 0, stderr[-3000:]
    runs = experiment_runs(store)
    stages = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert sorted(run.data.tags["pixelflip.stage"] for run in stages) == [
        f"stage-{index}" for index in range(processes)]
    assert sorted(run.data.tags["pixelflip.pipeline_id"] for run in parents) == [
        "pipeline-0", "pipeline-1"]
    assert {run.info.status for run in runs} == {"FINISHED"}
    client = store_client(store)
    for run in stages:
        assert run.data.params == {"stage": run.data.tags["pixelflip.stage"]}
        assert [point.step for point in client.get_metric_history(run.info.run_id, "loss")] \
            == [0, 1, 2]
    # Each parent has exactly the stages of its pipeline.
    by_parent = {parent.info.run_id: parent.data.tags["pixelflip.pipeline_id"] for parent in parents}
    for run in stages:
        index = int(run.data.tags["pixelflip.stage"].removeprefix("stage-"))
        assert by_parent[run.data.tags["mlflow.parentRunId"]] == f"pipeline-{index % 2}"


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signalled_stage_ends_its_runs_as_killed(signal_number, store):
    child = start_stage(store, "train", "sleep")
    run_id, parent_id = run_ids(read_until(child, "ready"))

    child.send_signal(signal_number)
    _, stderr = child.communicate(timeout=PROCESS_TIMEOUT_S)

    assert child.returncode == 128 + signal_number, stderr[-3000:]
    assert "Traceback" not in stderr
    client = store_client(store)
    assert client.get_run(run_id).info.status == "KILLED"
    assert client.get_run(parent_id).info.status == "KILLED"
    run = client.get_run(run_id)
    assert run.data.tags["pixelflip.host"] == socket.gethostname()
    assert run.data.tags["pixelflip.pid"] == str(child.pid)


def test_a_stage_killed_outright_is_marked_killed_by_the_next_stage(store, monkeypatch):
    child = start_stage(store, "train", "sleep")
    run_id, parent_id = run_ids(read_until(child, "ready"))
    child.kill()  # SIGKILL: nothing in the process can end its run
    child.communicate(timeout=PROCESS_TIMEOUT_S)
    client = store_client(store)
    assert client.get_run(run_id).info.status == "RUNNING"

    monkeypatch.setenv("PIXELFLIP_PIPELINE_ID", "test-pipeline-2")
    with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                            params={}):
        client = store_client(store)
        assert client.get_run(run_id).info.status == "KILLED"
        assert client.get_run(parent_id).info.status == "KILLED"


def test_only_runs_whose_process_is_gone_are_ended(store):
    client = store_client(store)
    experiment_id = client.create_experiment("unit")
    here = liveness.process_tags()
    started = float(here[liveness.PROCESS_STARTED_TAG])

    def child(parent, **tags):
        return client.create_run(experiment_id, tags={
            **here, "mlflow.parentRunId": parent, **tags}).info.run_id

    shared, alone = (client.create_run(experiment_id).info.run_id for _ in range(2))
    alive = child(shared)
    # The same pid, started long before this process did: a reused pid, its run is dead.
    reused_pid = child(shared, **{liveness.PROCESS_STARTED_TAG: f"{started - 1000:.3f}"})
    other_host = child(alone, **{liveness.HOST_TAG: "another-machine",
                                 liveness.PID_TAG: "1"})
    dead = child(alone, **{liveness.PID_TAG: str(2**22 + 12345)})  # above the kernel's pid_max

    ended = liveness.end_dead_runs(client, experiment_id)

    assert sorted(ended) == sorted([reused_pid, dead])
    status = {run_id: client.get_run(run_id).info.status
              for run_id in (shared, alone, alive, reused_pid, other_host, dead)}
    assert status == {shared: "RUNNING", alone: "RUNNING", alive: "RUNNING",
                      reused_pid: "KILLED", other_host: "RUNNING", dead: "KILLED"}
    # A parent whose only running children are dead ends with them.
    orphan = client.create_run(experiment_id).info.run_id
    last = child(orphan, **{liveness.PID_TAG: str(2**22 + 12346)})
    assert sorted(liveness.end_dead_runs(client, experiment_id)) == sorted([orphan, last])


def test_signal_handlers_are_restored_and_others_handlers_kept(store):
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}

    def someone_elses(signal_number, frame):
        raise SystemExit(1)

    signal.signal(signal.SIGHUP, someone_elses)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with tracking.stage_run("train", root=store, experiment="unit", uri=None,
                                enabled=True, params={}):
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, someone_elses)
            assert signal.getsignal(signal.SIGHUP) is someone_elses
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) is someone_elses
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@pytest.mark.parametrize("broken", ["folder_is_a_file", "database_is_a_folder"])
@pytest.mark.parametrize("from_environment", [False, True], ids=["params", "environment"])
def test_an_unusable_sqlite_store_is_one_line(broken, from_environment, store, monkeypatch):
    if broken == "folder_is_a_file":
        (store / "not-a-folder").write_text("")
        uri = f"sqlite:///{store / 'not-a-folder' / 'mlflow.db'}"
    else:
        (store / "folder.db").mkdir()
        uri = f"sqlite:///{store / 'folder.db'}"
    if from_environment:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()

    with pytest.raises(TrackingUnavailableError) as error, tracking.stage_run(
            "train", root=store, experiment="unit", uri=uri, enabled=True, params={}):
        pytest.fail("the stage body ran although the store cannot be used")

    message = str(error.value)
    assert isinstance(error.value, ValueError)  # one line, exit status 2, through run_stage
    assert "\n" not in message and uri in message
    assert "tracking.enabled: false in params.yaml" in message
    assert ("unset MLFLOW_TRACKING_URI" in message) is from_environment
    assert time.monotonic() - started < PROCESS_TIMEOUT_S
