"""The pipeline's parent run against a real SQLite store: the whole params.yaml as its params,
the summary metrics, and an experiment marked as model training (not GenAI)."""

import dataclasses
import logging
import shutil

import pytest
from support.project import ROOT, update_params
from support.tracking_store import make_project, store_client

from pixelflip.config.declared import declared_values
from pixelflip.config.params import load_params
from pixelflip.tracking import runs as tracking
from pixelflip.tracking.experiment import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from pixelflip.tracking.parent import log_new_params, loggable_params


@pytest.fixture()
def store(tmp_path, monkeypatch):
    root = make_project(tmp_path, monkeypatch)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    return root


def run_stage(root, stage, params=None, body=None):
    with tracking.stage_run(stage, root=root, experiment="unit", uri=None, enabled=True,
                            params=params or {"train.epochs": 2}) as run:
        if body is not None:
            body()
        return run


def parent_and_children(root):
    client = store_client(root)
    runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    return parents[0], [run for run in runs if run not in parents]


def every_param(root):
    params = load_params(root / "params.yaml")
    return declared_values(params, [field.name for field in dataclasses.fields(params)])


def test_the_parent_holds_every_key_of_params_yaml(store):
    run_stage(store, "download", params={"data.source": "mnist"})
    run_stage(store, "train")
    parent, children = parent_and_children(store)
    expected = {key: str(value) for key, value in every_param(store).items()}
    assert len(expected) > 100  # more than one MLflow batch of params
    assert parent.data.params == expected
    # Flattened as the children's params are: a dotted key, the value as Python writes it.
    epochs = load_params(store / "params.yaml").train.epochs
    assert parent.data.params["train.epochs"] == str(epochs)
    # Each child still holds only the params of its own stage.
    assert {run.info.run_name: run.data.params for run in children} == {
        "download": {"data.source": "mnist"}, "train": {"train.epochs": "2"}}


def test_a_params_file_changed_mid_pipeline_keeps_the_first_values(store):
    run_stage(store, "download")
    epochs = load_params(store / "params.yaml").train.epochs
    update_params(store, {"train": {"epochs": epochs + 1}})
    # MLflow refuses to log a param again with another value; the stage must not fail on it.
    run = run_stage(store, "train")
    parent, _ = parent_and_children(store)
    assert parent.data.params["train.epochs"] == str(epochs)
    assert store_client(store).get_run(run.info.run_id).info.status == "FINISHED"


def test_a_project_without_params_yaml_gives_a_parent_without_params(store):
    (store / "params.yaml").unlink()
    run_stage(store, "train")
    parent, _ = parent_and_children(store)
    assert parent.data.params == {}


def test_a_value_longer_than_mlflows_limit_is_cut_and_can_be_logged_again(store):
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    long = "x" * (MAX_PARAM_VAL_LENGTH + 500)
    cut = loggable_params({"long": long, "short": 7})
    assert cut["short"] == "7"
    assert len(cut["long"]) == MAX_PARAM_VAL_LENGTH and cut["long"].endswith("...")
    run = run_stage(store, "train")
    client = store_client(store)
    assert log_new_params(client, run.info.run_id, {"long": long}) == {"long": cut["long"]}
    assert log_new_params(client, run.info.run_id, {"long": long}) == {}
    assert client.get_run(run.info.run_id).data.params["long"] == cut["long"]


def test_pipeline_metrics_land_on_the_parent_only(store):
    summary = {"accuracy.base": 0.98, "elastic_net.validity": 0.5,
               "elastic_net.s_per_image": 0.25, "missing": None, "nan": float("nan")}
    run_stage(store, "evaluate", body=lambda: tracking.log_pipeline_metrics(summary))
    # A later stage of the same pipeline updates a value; the table shows the newest.
    run_stage(store, "compare",
              body=lambda: tracking.log_pipeline_metrics({"accuracy.base": 0.99}))
    parent, children = parent_and_children(store)
    assert parent.data.metrics == {"accuracy.base": 0.99, "elastic_net.validity": 0.5,
                                   "elastic_net.s_per_image": 0.25}
    assert all(run.data.metrics == {} for run in children)
    history = store_client(store).get_metric_history(parent.info.run_id, "accuracy.base")
    assert [(point.value, point.step) for point in history] == [(0.98, 0), (0.99, 0)]


def test_pipeline_metrics_without_a_run_write_nothing(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.log_pipeline_metrics({"accuracy.base": 0.9})
    assert not (tmp_path / "mlflow.db").exists()


def test_a_new_experiment_is_a_model_training_one(store):
    run_stage(store, "train")
    experiment = store_client(store).get_experiment_by_name("unit")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND == "custom_model_development"


@pytest.mark.parametrize("old_kind, kind_after", [
    (None, MODEL_TRAINING_KIND),
    ("genai_development", MODEL_TRAINING_KIND),
    ("no_inferred_type", MODEL_TRAINING_KIND),
    # A model-training kind a user chose in the UI stays.
    ("classification", "classification"),
])
def test_an_existing_experiment_is_marked_as_model_training(store, old_kind, kind_after):
    client = store_client(store)
    tags = {} if old_kind is None else {EXPERIMENT_KIND_TAG: old_kind}
    client.create_experiment("unit", artifact_location=(store / "mlartifacts").as_uri(),
                             tags=tags)
    run_stage(store, "train")
    assert client.get_experiment_by_name("unit").tags[EXPERIMENT_KIND_TAG] == kind_after


@pytest.fixture()
def mlflow_logger_levels():
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    yield loggers
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def test_a_stage_quiets_mlflows_info_lines(store, mlflow_logger_levels, monkeypatch):
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    for logger in mlflow_logger_levels:
        logger.setLevel(logging.INFO)
    run_stage(store, "train")
    assert [logger.level for logger in mlflow_logger_levels] == [logging.WARNING] * 2


def test_a_chosen_mlflow_logging_level_is_kept(store, mlflow_logger_levels, monkeypatch):
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")
    mlflow_logger_levels[0].setLevel(logging.DEBUG)
    run_stage(store, "train")
    assert mlflow_logger_levels[0].level == logging.DEBUG
