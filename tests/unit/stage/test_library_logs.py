"""A stage's output is its own lines: no TensorFlow C++ log, no predict bars, no MLflow INFO;
and the settings the docs name bring the libraries' lines back."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from support.project import ROOT
from support.tracking_store import make_project, store_client

from pixelflip.stage.library_logs import is_hidden_cpp_log_line, without_registry_notices

CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)
MLFLOW_INFO_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO ", re.MULTILINE)
# A stage doing what the noisy ones do: TensorFlow on the CPU, the tf.data pipeline under op
# determinism (which rewrites its parallel map), a model logged and registered in MLflow.
PROBE = '''
from pixelflip.stage.frame import run_stage


def main(params):
    import keras

    from pixelflip.data.loaders import make_dataset
    from pixelflip.tracking.model_registry import log_keras_model
    from pixelflip.training.classifier import set_global_seed

    set_global_seed(params.seed)
    images = next(iter(make_dataset("prepared", "train", batch_size=4, shuffle=True,
                                    random_state=params.seed)))[0].numpy()
    model = keras.Sequential([keras.Input(images.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    # The second version meets the registered model the first one created.
    versions = [log_keras_model(model, name, images[:2], registered_model_name="probe-model",
                                tags={"module": "probe"}) for name in ("first", "second")]
    print(f"[probe] registered versions {', '.join(versions)}", flush=True)


if __name__ == "__main__":
    run_stage("probe", main)
'''


@pytest.mark.parametrize("line, level, hidden", [
    ("I0000 00:00:1796180512.575293     871 port.cc:153] oneDNN custom operations are on.", 1,
     True),
    ("I0000 00:00:1796180512.575293     871 port.cc:153] oneDNN custom operations are on.", 0,
     False),
    ("E0000 00:00:1796180516.241340     871 cuda_platform.cc:52] failed call to cuInit", 3, True),
    ("E0000 00:00:1796180516.241340     871 cuda_platform.cc:52] failed call to cuInit", 2,
     False),
    ("W0000 00:00:1796180516.241340     871 some/dir/file.cc:7] warning", 2, True),
    ("F0000 00:00:1796180516.241340     871 check.cc:12] Check failed", 3, False),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
     1, True),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
     0, False),
    ("/site-packages/tensorflow/__init__.py:5: DeprecationWarning: something", 3, False),
    ("Illegal instruction", 3, False),
])
def test_c_log_lines_hide_as_tensorflow_hides_them_and_nothing_else_does(line, level, hidden):
    assert is_hidden_cpp_log_line(line, level) is hidden


def test_registry_notices_are_dropped_and_every_other_line_kept_in_order(capsys):
    with pytest.raises(RuntimeError):
        with without_registry_notices():
            print("Successfully registered model 'pixelflip-classifier'.", file=sys.stderr)
            print("2026/12/02 03:02:03 WARNING mlflow: the store is slow", file=sys.stderr)
            print("Registered model 'pixelflip-classifier' already exists. Creating a new "
                  "version of this model...", file=sys.stderr)
            print("Created version '7' of model 'pixelflip-classifier'.", file=sys.stderr)
            print("[tracking] warning: MLflow tracking store failed", file=sys.stderr)
            raise RuntimeError("the store went away")
    assert capsys.readouterr().err.splitlines() == [
        "2026/12/02 03:02:03 WARNING mlflow: the store is slow",
        "[tracking] warning: MLflow tracking store failed"]


@pytest.fixture
def probe_project(tmp_path, monkeypatch):
    make_project(tmp_path, monkeypatch)
    (tmp_path / "dvc.yaml").write_text("stages:\n  probe:\n    cmd: python probe.py\n"
                                       "    params: [seed]\n")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "probe.py").write_text(PROBE)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    np.save(prepared / "train_images.npy",
            np.random.default_rng(0).integers(0, 256, (8, 6, 6, 1), dtype=np.uint8))
    np.save(prepared / "train_labels.npy", np.array([0, 1] * 4, dtype=np.int64))
    for name in ("TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL",
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run_probe(project, **environment):
    result = subprocess.run([sys.executable, "probe.py"], cwd=project, capture_output=True,
                            text=True, timeout=600, env={**os.environ, **environment})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
def test_a_stage_prints_its_own_lines_and_no_library_chatter(probe_project):
    output = run_probe(probe_project)
    assert "[probe] registered versions 1, 2" in output and "[probe] done in" in output
    # The models really were logged (with MLflow's serving check) and registered.
    client = store_client(probe_project)
    assert str(client.get_model_version_by_alias("probe-model", "latest-probe").version) == "2"
    assert CPP_LOG_LINE.findall(output) == []
    for noise in ("cuInit", "use_unbounded_threadpool", "absl::InitializeLog", "━",
                  "Successfully registered model", "already exists", "Created version"):
        assert noise not in output
    assert MLFLOW_INFO_LINE.findall(output) == []


@pytest.mark.slow
def test_the_documented_settings_bring_the_library_logs_back(probe_project):
    output = run_probe(probe_project, TF_CPP_MIN_LOG_LEVEL="0", MLFLOW_LOGGING_LEVEL="INFO")
    assert "[probe] done in" in output
    assert CPP_LOG_LINE.findall(output) and MLFLOW_INFO_LINE.findall(output)
