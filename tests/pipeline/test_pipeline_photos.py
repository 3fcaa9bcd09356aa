"""End to end on real photos: `dvc repro` of the cats-vs-dogs pipeline folder on a small subset
of ../shared/data/petimages-10k (skipped with the reason when that folder is absent).

The folder's committed dvc.yaml and params.yaml are copied into a temporary git repository of
the project, with tiny training and explanation settings; one repro runs every stage from
``pipelines/cats-vs-dogs``, and every output must land in that folder, not at the root.
"""

import json

import pandas as pd
import pytest
import yaml
from support.project import ROOT, copy_project, ran_stages, run, update_params
from support.shipped_files import committed_text

pytestmark = pytest.mark.slow

PHOTOS = ROOT.parent / "shared" / "data" / "petimages-10k"
FOLDER = "pipelines/cats-vs-dogs"
MODELS = ["base", "se", "cbam", "pam", "gc"]
# The photo configuration as committed (separable_resnet, RGB, flips), made small: 40 photos a
# class at 64 px, one epoch, few explanation samples.
SMALL = {
    "data": {"path": str(PHOTOS), "max_images_per_class": 40, "image_size": 64},
    "train": {"epochs": 1, "input_size": None},
    "attention": {"epochs": 1, "frozen_epochs": 1},
    "oracle": {"epochs": 1},
    "attributions": {"smoothgrad": {"num_samples": 4}, "lime": {"num_samples": 40}},
    "select": {"num_images": 4, "misclassified": 2, "figure_images": 2},
    "counterfactuals": {"elastic_net": {"max_iterations": 10, "binary_search_steps": 2},
                        "growing_spheres": {"num_samples": 16, "max_layers": 8},
                        "regions": {"num_references": 10}},
    "autoencoders": {"epochs": 1, "max_images_per_class": 10},
    "evaluate": {"deletion_steps": 4},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if not PHOTOS.is_dir():
        pytest.skip(f"{PHOTOS} is absent: the photo pipeline test needs the shared "
                    "petimages-10k photos (see ../shared/data/README.md)")
    project = copy_project(tmp_path_factory, {})
    folder = project / FOLDER
    folder.mkdir(parents=True)
    (folder / "dvc.yaml").write_text((ROOT / FOLDER / "dvc.yaml").read_text())
    # As committed: `make cats-vs-dogs DATA=...` runs an experiment that sets data.source and
    # data.path in the folder's working copy.
    (folder / "params.yaml").write_text(committed_text(ROOT, f"{FOLDER}/params.yaml"))
    update_params(project, SMALL, params_file=f"{FOLDER}/params.yaml")
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "photo pipeline"], project)
    result = run(["dvc", "repro"], folder)
    return project, folder, result


def test_repro_runs_every_stage_of_the_folder_and_writes_its_outputs_there(project):
    project, folder, result = project
    lock = yaml.safe_load((folder / "dvc.lock").read_text())
    assert ran_stages(result.stdout) == list(lock["stages"])
    assert len(lock["stages"]) == 16
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            assert (folder / out["path"]).exists(), out["path"]
    # Nothing of the photo run lands at the root, where the digits pipeline writes.
    assert not (project / "data").exists() and not (project / "models").exists()
    # The folder's own pipeline: a bare `dvc status` also lists the root one, never run here.
    status = run(["dvc", "status", "dvc.yaml"], folder)
    assert "up to date" in status.stdout, status.stdout


def test_the_photos_are_validated_and_the_photo_network_trained(project):
    _, folder, _ = project
    data = json.loads((folder / "metrics/data.json").read_text())
    assert data["class_counts"] == {"Cat": 40, "Dog": 40}
    assert data["status_counts"]["kept"] == 80
    comparison = json.loads((folder / "metrics/comparison.json").read_text())
    assert list(comparison["models"]) == MODELS
    test_images = data["split_counts"]["test"]
    for row in comparison["models"].values():
        assert row["backbone"] == "separable_resnet"
        assert 0.0 <= row["test_accuracy_low"] <= row["test_accuracy"] <= row[
            "test_accuracy_high"] <= 1.0
        # A dozen test photos leave a wide interval: the table must say so.
        assert row["test_accuracy_high"] - row["test_accuracy_low"] > 0.2, test_images


def test_explanations_of_every_model_are_written(project):
    _, folder, _ = project
    evaluation = json.loads((folder / "metrics/evaluation.json").read_text())
    assert set(evaluation) == set(MODELS)
    per_image = pd.read_csv(folder / "plots/evaluate/counterfactuals_per_image.csv")
    assert set(per_image["model"]) == set(MODELS)
    for model in MODELS:
        assert (folder / f"plots/attributions/{model}.png").stat().st_size > 10_000
        assert (folder / f"plots/explanations/{model}_sampled_elastic_net.png").is_file()
    assert (folder / "plots/explanations/base_example.png").is_file()


def test_runs_go_to_the_project_store_under_the_photo_experiment(project):
    import mlflow
    from mlflow.tracking import MlflowClient

    project, folder, _ = project
    assert not (folder / "mlflow.db").exists()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("pixelflip-cats-vs-dogs")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    stages = {run.data.tags.get("pixelflip.stage") for run in runs}
    assert {"train", "attention@se", "evaluate"} <= stages, stages
