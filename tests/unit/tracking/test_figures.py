"""Every figure a stage logs from plots/ is an MLflow image too, keyed by its path there."""

import numpy as np
import pytest
from PIL import Image
from support.tracking_store import make_project, store_client

from pixelflip.tracking import runs as tracking
from pixelflip.tracking.images import figure_key, figures


@pytest.fixture()
def store(tmp_path, monkeypatch):
    root = make_project(tmp_path, monkeypatch)
    # Stages run from the project root, where layout's relative paths (plots/) point.
    monkeypatch.chdir(root)
    return root


def write_png(path, side=20, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side), value, dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("path, key", [
    ("plots/explanations/base_sampled_elastic_net.png", "explanations/base_sampled_elastic_net"),
    ("plots/attention/se/history.png", "attention/se/history"),
    ("plots/comparison/models.PNG", "comparison/models"),
    # Characters MLflow refuses in an image key become underscores.
    ("plots/evaluate/a+b (c).png", "evaluate/a_b _c_"),
    ("plots/train/history.csv", None),
    # PNGs outside plots/ are not figures: the Data Docs site's logos, for one.
    ("reports/data/static/images/logo-long.png", None),
])
def test_a_figure_is_keyed_by_its_path_under_plots(store, path, key):
    assert figure_key(path) == key
    # An absolute path names the same figure.
    assert figure_key(store / path) == key


def test_the_figures_of_a_folder_are_its_pngs_below_plots(store):
    write_png(store / "plots/attention/se/history.png")
    write_png(store / "plots/attention/se/deeper/maps.png")
    (store / "plots/attention/se/history.csv").write_text("epoch\n1\n")
    assert {key: path.name for key, path in figures("plots/attention").items()} == {
        "attention/se/deeper/maps": "maps.png", "attention/se/history": "history.png"}
    assert list(figures("plots/attention/se/history.png")) == ["attention/se/history"]
    assert figures("plots/nothing-here") == {}


def logged_images(client, run_id):
    """``{key: (width, height)}`` of the images a run logged with a key (not the previews)."""
    found = {}
    for entry in client.list_artifacts(run_id, "images"):
        name = entry.path.removeprefix("images/")
        if name.endswith(".png"):
            key = name.split("+step+")[0].replace("~", "/")
            local = client.download_artifacts(run_id, entry.path)
            with Image.open(local) as image:
                found[key] = image.size
    return found


def test_log_artifacts_logs_the_figures_as_images_too(store):
    write_png(store / "plots/train/history.png", side=30)
    (store / "plots/train/history.csv").write_text("epoch\n1\n")
    write_png(store / "reports/data/static/images/logo.png")
    write_png(store / "plots/comparison/models.png", side=40)
    with tracking.stage_run("train", root=store, experiment="unit", uri=None, enabled=True,
                            params={}) as run:
        tracking.log_artifacts("plots/train", artifact_path="plots")
        tracking.log_artifacts("reports/data", artifact_path="data_docs")
        tracking.log_artifacts(store / "plots/comparison/models.png", artifact_path="comparison")
    client = store_client(store)
    run_id = run.info.run_id
    assert logged_images(client, run_id) == {"train/history": (30, 30),
                                             "comparison/models": (40, 40)}
    assert client.get_run(run_id).data.tags["mlflow.loggedImages"] == "True"
    # The files are still artifacts where they were.
    assert sorted(entry.path for entry in client.list_artifacts(run_id, "plots")) == [
        "plots/history.csv", "plots/history.png"]
    assert [entry.path for entry in client.list_artifacts(run_id, "comparison")] == [
        "comparison/models.png"]


def test_without_a_run_no_figure_is_logged(store):
    write_png(store / "plots/train/history.png")
    tracking.log_artifacts("plots/train", artifact_path="plots")
    assert not (store / "mlflow.db").exists()
