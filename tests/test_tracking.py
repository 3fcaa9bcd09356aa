"""MLflow grouping against a real SQLite store: one parent per pipeline, one child per stage."""

from pathlib import Path

import pytest

from pixelflip import tracking


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PIXELFLIP_PIPELINE_ID", "test-pipeline-1")
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "source.json").write_text('{"sha256": "abc123"}')
    return tmp_path


def run_stage(root, stage, enabled=True):
    with tracking.stage_run(stage, root=root, experiment="unit", uri=None, enabled=enabled,
                            params={"train.epochs": 2}) as run:
        tracking.log_metrics({"test": {"accuracy": 0.5}, "skipped": None, "flag": True,
                              "reasons": {"palette to RGB, gif data named .jpg": 2}})
        return run


def test_stages_of_one_pipeline_share_a_parent(store):
    import mlflow
    from mlflow.tracking import MlflowClient

    run_stage(store, "download")
    run_stage(store, "train")
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("unit")
    assert experiment.artifact_location == (store / "mlartifacts").as_uri()
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(parents) == 1
    assert sorted(run.data.tags["pixelflip.stage"] for run in children) == ["download", "train"]
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parents[0].info.run_id}
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name.startswith("tiny-exp ")
    for run in runs:
        assert run.data.tags["dvc.exp_name"] == "tiny-exp"
        assert run.data.tags["pixelflip.data_sha256"] == "abc123"
    child = children[0]
    assert child.data.params == {"train.epochs": "2"}
    # Characters MLflow refuses in names (the comma) become underscores instead of failing.
    assert child.data.metrics == {"test.accuracy": 0.5,
                                  "reasons.palette to RGB_ gif data named .jpg": 2.0}


def test_a_new_pipeline_gets_a_new_parent(store, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    run_stage(store, "train")
    monkeypatch.setenv("PIXELFLIP_PIPELINE_ID", "test-pipeline-2")
    run_stage(store, "train")
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("unit").experiment_id])
    assert sum("mlflow.parentRunId" not in run.data.tags for run in runs) == 2


def test_a_failed_stage_marks_the_parent_failed(store):
    import mlflow
    from mlflow.tracking import MlflowClient

    with pytest.raises(RuntimeError):
        with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                                params={}):
            raise RuntimeError("boom")
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("unit").experiment_id])
    assert {run.info.status for run in runs} == {"FAILED"}


def test_disabled_tracking_writes_no_store(store):
    assert run_stage(store, "train", enabled=False) is None
    assert not (store / "mlflow.db").exists()


def test_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "sqlite:///elsewhere.db"


def test_temporary_experiment_copies_log_to_the_real_store():
    copy = Path("/repo/.dvc/tmp/exps/tmpabc123")
    assert tracking.store_root(copy) == Path("/repo")
    assert tracking.store_root(Path("/repo")) == Path("/repo")


@pytest.mark.parametrize("command, expected", [
    (["/venv/bin/python", "/venv/bin/dvc", "repro"], True),
    (["/venv/bin/dvc", "exp", "run", "-S", "train.epochs=2"], True),
    (["python", "-m", "dvc", "repro"], True),
    (["python", "stages/train.py"], False),
    (["/bin/sh", "-c", "python stages/train.py"], False),
])
def test_dvc_ancestor_detection(command, expected):
    assert tracking._is_dvc_command(command) is expected


def test_flatten_nests_with_dots():
    assert tracking.flatten("evaluation", {"base": {"accuracy": 1, "cf": {"l1": 2}}}) == {
        "evaluation.base.accuracy": 1, "evaluation.base.cf.l1": 2}
