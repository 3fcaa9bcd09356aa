"""End to end with `train.mixed_precision: true`: the models train in half precision (bfloat16
on CPU, float16 on GPU) and every later stage explains them in float32.

One `dvc repro` of a copy of the project with the tiny params of test_pipeline.py, fewer epochs
and one attention module (the cheapest run that still passes every stage once).
"""

import time

import numpy as np
import pytest
import yaml
from pipeline.test_pipeline import STAGES as ALL_STAGES
from pipeline.test_pipeline import TINY
from support.project import copy_project, ran_stages, run

pytestmark = pytest.mark.slow

MIXED = {**TINY,
         "train": {**TINY["train"], "epochs": 2, "mixed_precision": True},
         "attention": {**TINY["attention"], "modules": ["se"]}}
MODELS = ["base", "se"]
# Every stage of the full run but the attention modules left out.
STAGES = [stage for stage in ALL_STAGES
          if not stage.startswith("attention@") or stage == "attention@se"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_project(tmp_path_factory, MIXED)
    started = time.perf_counter()
    result = run(["dvc", "repro"], project)
    print(f"mixed-precision dvc repro: {time.perf_counter() - started:.0f} s")
    project.joinpath("repro.log").write_text(result.stdout + result.stderr)
    return project


def test_every_stage_runs_with_mixed_precision(project):
    assert ran_stages((project / "repro.log").read_text()) == STAGES
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            assert (project / out["path"]).exists(), out["path"]


def test_models_are_saved_in_half_precision(project):
    import keras

    from pixelflip.models.loading import reduced_precision_layers

    # Otherwise the explanations below would prove nothing about mixed precision.
    for path in ["models/base.keras", "models/attention/se.keras"]:
        policies = set(reduced_precision_layers(keras.saving.load_model(project / path,
                                                                        safe_mode=True)).values())
        assert policies and policies <= {"mixed_bfloat16", "mixed_float16"}, path


def test_explanations_are_written_as_float32_arrays(project):
    arrays = {"data/attributions": ["maps"],
              "data/counterfactuals": ["counterfactuals", "perturbations",
                                       "counterfactual_probabilities"]}
    for folder, names in arrays.items():
        for model in MODELS:
            files = sorted((project / folder / model).glob("*.npz"))
            assert files, f"{folder}/{model}"
            for path in files:
                with np.load(path) as stored:
                    for name in names:
                        assert stored[name].dtype == np.float32, (path, name)
                        assert np.all(np.isfinite(stored[name])), (path, name)
    with np.load(project / "data/attention_maps/se.npz") as maps:
        assert sorted(maps.files) == ["counterfactual/attention_se", "original/attention_se"]
        for name in maps.files:
            assert maps[name].dtype == np.float32 and maps[name].shape == (8, 28, 28)
