"""MLflow against a real SQLite store: one parent per pipeline, one child per stage; system
metrics, per-epoch metrics (resumed runs included) and the device description."""

import os
import platform
import re
import time
from pathlib import Path

import pytest
from support.tracking_store import (
    SYSTEM_METRICS_SETTINGS,
    make_project,
    store_client,
)

from pixelflip.tracking import device, model_registry
from pixelflip.tracking import epochs as tracking_epochs
from pixelflip.tracking import runs as tracking


@pytest.fixture()
def store(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch)


def run_stage(root, stage, enabled=True):
    with tracking.stage_run(stage, root=root, experiment="unit", uri=None, enabled=enabled,
                            params={"train.epochs": 2}) as run:
        tracking.log_metrics({"test": {"accuracy": 0.5}, "skipped": None, "flag": True,
                              "reasons": {"palette to RGB, gif data named .jpg": 2}})
        return run


def test_stages_of_one_pipeline_share_a_parent(store):
    run_stage(store, "download")
    run_stage(store, "train")
    client = store_client(store)
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
    run_stage(store, "train")
    monkeypatch.setenv("PIXELFLIP_PIPELINE_ID", "test-pipeline-2")
    run_stage(store, "train")
    client = store_client(store)
    runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    assert sum("mlflow.parentRunId" not in run.data.tags for run in runs) == 2


def test_a_failed_stage_marks_the_parent_failed(store):
    with pytest.raises(RuntimeError), tracking.stage_run(
            "train", root=store, experiment="unit", uri=None, enabled=True, params={}):
        raise RuntimeError("boom")
    client = store_client(store)
    runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
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


def dvc_project(root: Path) -> Path:
    """A DVC project at ``root`` (its ``.dvc/`` folder) with a pipeline folder below it."""
    (root / ".dvc").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    folder = root / "pipelines" / "photos"
    folder.mkdir(parents=True)
    (folder / "dvc.yaml").write_text("stages: {}\n")
    return folder


def test_a_pipeline_folder_shares_the_project_store(tmp_path, monkeypatch):
    folder = dvc_project(tmp_path / "repo")
    assert tracking.store_root(folder) == tmp_path / "repo"
    assert tracking.store_root(tmp_path / "repo") == tmp_path / "repo"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri(None, folder) == \
        f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    # A temporary experiment copy of the pipeline folder logs to the real project too.
    copy = Path("/repo/.dvc/tmp/exps/tmpabc123/pipelines/cats-vs-dogs")
    assert tracking.store_root(copy) == Path("/repo")


def test_the_nearest_dvc_project_holds_the_store(tmp_path):
    (tmp_path / "outer" / ".dvc").mkdir(parents=True)
    folder = dvc_project(tmp_path / "outer" / "inner")
    assert tracking.store_root(folder) == tmp_path / "outer" / "inner"
    # Outside any DVC project, the pipeline's own folder holds it, as before.
    standalone = tmp_path / "standalone"
    standalone.mkdir()
    assert tracking.store_root(standalone) == standalone


def test_a_stage_run_from_a_pipeline_folder_logs_to_the_project_store(tmp_path, monkeypatch):
    folder = make_project(dvc_project(tmp_path / "repo"), monkeypatch)
    run = run_stage(folder, "train")
    assert (tmp_path / "repo" / "mlflow.db").exists()
    assert not (folder / "mlflow.db").exists()
    client = store_client(tmp_path / "repo")
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert client.get_experiment_by_name("unit").artifact_location == \
        (tmp_path / "repo" / "mlartifacts").as_uri()


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


def test_system_metrics_are_sampled_during_a_short_stage(store):
    with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                            params={}, log_system_metrics=True) as run:
        # Two sampling intervals and a bit of busy work, so at least one sample is logged.
        deadline = time.monotonic() + 1.5 * tracking.SYSTEM_METRICS_INTERVAL_S
        while time.monotonic() < deadline:
            sum(range(10_000))
    client = store_client(store)
    metrics = client.get_run(run.info.run_id).data.metrics
    for name in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
                 "system/system_memory_usage_percentage"):
        assert name in metrics
    assert 0.0 <= metrics["system/cpu_utilization_percentage"] <= 100.0
    assert metrics["system/system_memory_usage_megabytes"] > 0.0
    # GPU metrics appear exactly when NVML sees a GPU (none here means: skipped, no failure).
    has_gpu = bool(device.nvml_gpu_memory())
    assert ("system/gpu_0_utilization_percentage" in metrics) is has_gpu
    # The sampling settings were set for this run only, not left in the environment.
    assert not set(SYSTEM_METRICS_SETTINGS) & set(os.environ)


def test_system_metrics_are_off_by_default(store):
    run = run_stage(store, "train")
    assert not [name for name in store_client(store).get_run(run.info.run_id).data.metrics
                if name.startswith("system/")]


def test_a_sampling_interval_in_the_environment_wins(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "7")
    with tracking._system_metrics_sampling():
        assert os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] == "7"
        assert os.environ["MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING"] == "1"
    assert os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] == "7"
    assert "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING" not in os.environ


def tiny_classifier_data(seed=0):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(32, 4)).astype("float32")
    labels = (features[:, 0] > 0).astype("int64")
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
    return dataset, dataset


def tiny_classifier():
    import keras

    from pixelflip.training.classifier import compile_classifier

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    compile_classifier(model, learning_rate=0.01)
    return model


def metric_history(client, run_id, name):
    """``(steps, values)`` of every point logged for metric ``name``, in step order."""
    points = sorted((point.step, point.value) for point in client.get_metric_history(run_id, name))
    return [step for step, _ in points], [value for _, value in points]


def test_every_epoch_is_logged_with_its_number_as_step(store):
    from pixelflip.training.classifier import Schedule, train_classifier

    train, val = tiny_classifier_data()
    with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                            params={}) as run:
        schedule = Schedule(early_stopping_patience=5, reduce_lr_factor=0.5,
                            reduce_lr_patience=5)
        history = train_classifier(tiny_classifier(), train, val, epochs=3, schedule=schedule,
                                   extra_callbacks=tracking_epochs.epoch_callbacks(), verbose=0)
    client = store_client(store)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        steps, values = metric_history(client, run.info.run_id, name)
        assert steps == [1, 2, 3]
        assert values == pytest.approx(history[name], rel=1e-6)


def test_a_later_training_phase_numbers_its_epochs_on(store):
    train, val = tiny_classifier_data()
    model = tiny_classifier()
    with tracking.stage_run("attention@se", root=store, experiment="unit", uri=None,
                            enabled=True, params={}) as run:
        first = model.fit(train, validation_data=val, epochs=2, verbose=0,
                          callbacks=tracking_epochs.epoch_callbacks())
        second = model.fit(train, validation_data=val, epochs=3, verbose=0,
                           callbacks=tracking_epochs.epoch_callbacks(epoch_offset=2))
    steps, values = metric_history(store_client(store), run.info.run_id, "loss")
    assert steps == [1, 2, 3, 4, 5]
    assert values == pytest.approx(first.history["loss"] + second.history["loss"])


def test_a_resumed_run_logs_the_restored_epochs_too(store):
    train, val = tiny_classifier_data()
    # The backup holds epochs 1-3, but the weights saved are those after epoch 2: epoch 3 is
    # trained again, and its restored entry must not become a second point at step 3.
    restored = {"epoch": [1, 2, 3], "loss": [0.9, 0.8, 0.7], "val_accuracy": [0.5, 0.6, 0.65],
                "learning_rate": [0.01, 0.01, 0.01]}
    with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                            params={}) as run:
        fit = tiny_classifier().fit(train, validation_data=val, epochs=4, initial_epoch=2,
                                    callbacks=tracking_epochs.epoch_callbacks(restored), verbose=0)
    client = store_client(store)
    steps, values = metric_history(client, run.info.run_id, "loss")
    assert steps == [1, 2, 3, 4]
    assert values == pytest.approx([0.9, 0.8, *fit.history["loss"]])
    # No ReduceLROnPlateau here, so the rate comes from the optimizer.
    assert metric_history(client, run.info.run_id, "learning_rate") == ([1, 2, 3, 4], [0.01] * 4)


def test_the_epochs_a_fit_restored_internally_are_filled_in_afterwards(store):
    train, val = tiny_classifier_data()
    with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                            params={}) as run:
        # As train_classifier(seeding=Seeding(backup_dir=...)) does: epochs 1-2 come back from
        # the backup inside fit, and the history it returns covers all four.
        fit = tiny_classifier().fit(train, validation_data=val, epochs=4, initial_epoch=2,
                                    callbacks=tracking_epochs.epoch_callbacks(), verbose=0)
        history = {"epoch": [1, 2, 3, 4], "loss": [0.9, 0.8, *fit.history["loss"]],
                   "val_accuracy": [0.5, 0.6, *fit.history["val_accuracy"]]}
        assert tracking_epochs.log_epoch_history(history) == [1, 2]
        assert tracking_epochs.log_epoch_history(history) == []
    client = store_client(store)
    assert metric_history(client, run.info.run_id, "loss") == (
        [1, 2, 3, 4], pytest.approx(history["loss"]))
    assert metric_history(client, run.info.run_id, "val_accuracy")[0] == [1, 2, 3, 4]


def test_a_resumed_run_with_no_epoch_left_still_logs_the_restored_ones(store):
    with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                            params={}) as run:
        epoch_log = tracking_epochs.EpochMetricsLog({"epoch": [1, 2], "loss": [0.5, 0.4]})
        epoch_log.end_training()
        epoch_log.end_training()
    assert metric_history(store_client(store), run.info.run_id, "loss") == ([1, 2], [0.5, 0.4])


@pytest.mark.parametrize("history, message", [
    ({"loss": [0.5]}, "no 'epoch' list"),
    ({"epoch": [1, 2], "loss": [0.5]}, "history['loss'] has 1 entries"),
])
def test_a_malformed_history_is_refused(history, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tracking_epochs.EpochMetricsLog(history)
    with pytest.raises(ValueError, match=re.escape(message)):
        tracking_epochs.log_epoch_history(history)


def test_helpers_do_nothing_without_an_active_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking_epochs.epoch_callbacks({"epoch": [1], "loss": [0.5]}) == []
    assert tracking_epochs.log_epoch_history({"epoch": [1], "loss": [0.5]}) == []
    tracking.log_metrics({"loss": 0.5})
    tracking.log_params({"a": 1})
    assert model_registry.log_keras_model(None, "base", None, registered_model_name="m") is None
    assert list(tmp_path.iterdir()) == []


def test_cpu_model_is_read_from_proc_cpuinfo():
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip()
             for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.lower().startswith("model name")]
    if not names:
        pytest.skip("this machine's /proc/cpuinfo names no CPU model")
    assert device.cpu_model() == names[0]
    assert device.describe_device()["device.cpu"] == names[0]


def test_cpu_model_parses_cpuinfo_and_falls_back_to_the_platform(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                       "model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n"
                       "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n")
    assert device.cpu_model(cpuinfo) == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # ARM kernels name no model
    assert device.cpu_model(cpuinfo) == (platform.processor() or platform.machine())
    assert device.cpu_model(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_describe_device_names_the_hardware_and_the_extra_entries():
    import tensorflow as tf

    plain = device.describe_device()
    gpus = tf.config.list_physical_devices("GPU")
    assert plain["device.type"] == ("GPU" if gpus else "CPU")
    assert plain["device.gpu_count"] == len(gpus)
    assert plain["device.cpu_count"] == os.cpu_count()
    assert ("device.gpu_names" in plain) is bool(gpus)
    assert "device.strategy" not in plain
    if gpus:
        memory = plain["device.gpu_memory_mb"].split(", ")
        assert len(memory) == len(gpus)
        assert all(int(value) > 0 for value in memory)
    described = device.describe_device(extra={"strategy": "MirroredStrategy", "replicas": 2,
                                              "device.note": "x", "unset": None})
    assert described == {**plain, "device.strategy": "MirroredStrategy", "device.replicas": 2,
                         "device.note": "x"}


def test_gpu_memory_is_matched_by_name_not_by_index():
    nvml = [("NVIDIA A100-SXM4-80GB", 81920), ("NVIDIA T4", 15360), ("NVIDIA T4", 15360)]
    # CUDA_VISIBLE_DEVICES=2,0 makes TensorFlow's GPU:0 the second T4 and GPU:1 the A100.
    assert device.match_gpu_memory(["NVIDIA T4", "NVIDIA A100-SXM4-80GB"], nvml) == [15360, 81920]
    assert device.match_gpu_memory(["NVIDIA H200", "NVIDIA T4"], nvml) == ["unknown", 15360]
    assert device.match_gpu_memory(["NVIDIA T4"] * 3, nvml) == [15360, 15360, "unknown"]
