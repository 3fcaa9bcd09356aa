"""Distribution strategy from TF_CONFIG and GPUs, per-task backups, and mixed precision."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelflip.training.classifier import Schedule, compile_classifier, train_classifier
from pixelflip.training.distribute import (
    make_strategy,
    set_precision,
    strategy_kind,
    task_backup_dir,
)


def tf_config(cluster, task=None) -> str:
    config = {"cluster": cluster}
    if task is not None:
        config["task"] = task
    return json.dumps(config)


ONE_WORKER = tf_config({"worker": ["localhost:12345"]}, {"type": "worker", "index": 0})
TWO_WORKERS = tf_config({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1})


@pytest.mark.parametrize(
    "environment, gpu_count, expected",
    [
        (None, 0, "default"),
        (None, 1, "default"),
        ("", 2, "mirrored"),
        ("  ", 8, "mirrored"),
        (ONE_WORKER, 0, "multi_worker"),
        (TWO_WORKERS, 4, "multi_worker"),
        (tf_config({"chief": ["a:1"], "worker": ["b:1"]}, {"type": "chief", "index": 0}), 0,
         "multi_worker"),
    ],
)
def test_strategy_kind_follows_tf_config_then_gpus(environment, gpu_count, expected):
    assert strategy_kind(environment, gpu_count) == expected


@pytest.mark.parametrize(
    "environment, message",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        ("[1, 2]", 'TF_CONFIG has no "cluster" object'),
        (tf_config({"worker": ["a:1"]}), "TF_CONFIG has no task"),
        (tf_config({"worker": []}, {"type": "worker", "index": 0}), "TF_CONFIG names no workers"),
        (tf_config({"worker": ["a:1"], "ps": ["b:1"]}, {"type": "worker", "index": 0}),
         "parameter servers"),
        (tf_config({"worker": ["a:1"]}, {"type": "worker", "index": 1}), "is not in the cluster"),
        (tf_config({"worker": ["a:1"]}, {"type": "evaluator", "index": 0}),
         "is not in the cluster"),
    ],
)
def test_malformed_tf_config_is_refused_with_what_to_fix(environment, message):
    with pytest.raises(ValueError, match=message):
        strategy_kind(environment, 0)


def test_negative_gpu_count_is_refused():
    with pytest.raises(ValueError, match="gpu_count"):
        strategy_kind(None, -1)


def test_make_strategy_reports_the_default_strategy_without_cluster_or_gpus(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if len(tf.config.list_physical_devices("GPU")) >= 2:
        pytest.skip("several GPUs visible: make_strategy would mirror")
    strategy, info = make_strategy()
    assert strategy is tf.distribute.get_strategy()
    assert info["strategy"] == "default" and info["replicas"] == 1 and info["workers"] == 1
    monkeypatch.setenv("TF_CONFIG", "{oops")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        make_strategy()


def test_each_task_of_a_cluster_backs_up_to_its_own_folder(tmp_path):
    assert task_backup_dir(tmp_path, "") == tmp_path
    assert task_backup_dir(tmp_path, ONE_WORKER) == tmp_path
    assert task_backup_dir(tmp_path, TWO_WORKERS) == tmp_path / "worker-1"


@pytest.fixture
def restore_dtype_policy():
    yield
    keras.config.set_dtype_policy("float32")


def tiny_model(*, float32_output=True):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    dtype = "float32" if float32_output else None
    return keras.Model(inputs, keras.layers.Activation("softmax", dtype=dtype)(x))


def test_set_precision_picks_the_policy_for_the_device(restore_dtype_policy):
    assert set_precision(False) == "float32"
    assert keras.config.dtype_policy().name == "float32"
    expected = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    assert set_precision(True) == expected
    assert keras.config.dtype_policy().name == expected
    with pytest.raises(ValueError, match="mixed_precision"):
        set_precision("yes")


def test_mixed_bfloat16_trains_with_float32_outputs(restore_dtype_policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = tiny_model()
    compile_classifier(model, learning_rate=1e-2)
    images = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(32) % 3)).batch(8)
    schedule = Schedule(early_stopping_patience=2, reduce_lr_factor=0.5, reduce_lr_patience=1)
    history = train_classifier(model, data, data, epochs=2, schedule=schedule, verbose=0)

    assert model.layers[1].compute_dtype == "bfloat16"
    assert model.layers[1].kernel.dtype == "float32"  # variables stay float32
    assert model.predict(images[:4], verbose=0).dtype == np.float32
    assert all(np.isfinite(history["loss"]))
    # bfloat16 has float32's range: no loss scaling.
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_float16_layers_get_loss_scaling_and_low_precision_outputs_are_refused(
        restore_dtype_policy):
    keras.config.set_dtype_policy("mixed_float16")
    model = tiny_model()
    compile_classifier(model, learning_rate=1e-2)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    with pytest.raises(ValueError, match=r"outputs \['float16'\].*dtype='float32'"):
        compile_classifier(tiny_model(float32_output=False), learning_rate=1e-2)


MULTI_WORKER_SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf
from pixelflip.training.epochs import EpochClock
from pixelflip.training.distribute import make_strategy
from pixelflip.training.classifier import (
    Schedule, Seeding, compile_classifier, set_global_seed, train_classifier)
import keras

strategy, info = make_strategy()  # first: collective ops are configured at startup
set_global_seed(3)
with strategy.scope():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dropout(0.2)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    compile_classifier(model, learning_rate=1e-2)
images = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
data = tf.data.Dataset.from_tensor_slices((images, np.arange(32) % 3)).batch(8)
history = train_classifier(
    model, data, data, epochs=1,
    schedule=Schedule(early_stopping_patience=1, reduce_lr_factor=0.5, reduce_lr_patience=1),
    seeding=Seeding(random_state=3, epoch_clock=EpochClock(), backup_dir=sys.argv[1]), verbose=0)
print("RESULT " + json.dumps({"info": info, "history": history,
                              "strategy": type(model.distribute_strategy).__name__}))
"""


def test_a_single_worker_cluster_trains_with_multi_worker_mirrored_strategy(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "TF_CONFIG": tf_config(
        {"worker": [f"localhost:{port}"]}, {"type": "worker", "index": 0})}
    backup_dir = tmp_path / "backup"
    completed = subprocess.run(
        [sys.executable, "-c", MULTI_WORKER_SCRIPT, str(backup_dir)], env=environment,
        capture_output=True, text=True, cwd=Path(__file__).parent, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["info"] == {"strategy": "MultiWorkerMirroredStrategy", "replicas": 1,
                              "workers": 1, "gpus": result["info"]["gpus"]}
    # The model was built under the strategy (its class is CollectiveAllReduceStrategy).
    assert result["strategy"] == tf.distribute.MultiWorkerMirroredStrategy.__name__
    assert result["history"]["epoch"] == [1]
    assert np.isfinite(result["history"]["loss"][0])
    assert not backup_dir.exists()  # deleted once training finished
