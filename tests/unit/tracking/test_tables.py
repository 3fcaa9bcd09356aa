"""Counterfactual results as MLflow tables: one row per counterfactual, images in three columns,
logged to a real SQLite store."""

import json

import numpy as np
import pytest
from PIL import Image
from support.hand_made_results import fake_result
from support.tracking_store import make_project, store_client

from pixelflip.tracking import runs as tracking
from pixelflip.tracking.tables import (
    MIN_IMAGE_SIDE,
    change_image,
    counterfactual_table,
    log_counterfactual_table,
    table_image,
)

CLASSES = [f"digit {index}" for index in range(10)]


def two_digits():
    """Two 28x28 grey images predicted 3, then 5. Image 0 (valid): pixel (2, 3) +0.5, pixel
    (4, 5) -0.25, pixel (6, 7) +1e-4: L0 3, L1 0.7501, L2 sqrt(0.3125 + 1e-8). Image 1 (not
    valid): unchanged."""
    originals = np.full((2, 28, 28, 1), 0.5, dtype=np.float32)
    counterfactuals = originals.copy()
    counterfactuals[0, 2, 3, 0] += 0.5
    counterfactuals[0, 4, 5, 0] -= 0.25
    counterfactuals[0, 6, 7, 0] += 1e-4
    return fake_result(originals, counterfactuals, 3, 5, success=np.array([True, False]))


def test_the_table_has_a_row_per_counterfactual_with_its_classes_and_sizes():
    table = counterfactual_table(two_digits(), CLASSES, test_indices=[17, 4])
    assert list(table.columns) == ["test index", "original", "counterfactual", "change",
                                   "source class", "target class", "reached class", "valid",
                                   "L0", "L1", "L2"]
    assert table["test index"].tolist() == [17, 4]
    assert table["source class"].tolist() == ["digit 3", "digit 3"]
    assert table["target class"].tolist() == ["any other", "any other"]
    assert table["reached class"].tolist() == ["digit 5", "digit 5"]
    assert table["valid"].tolist() == [True, False]
    # Every change counts towards L0, even one too small for the evaluation's tolerance.
    assert table["L0"].tolist() == [3, 0]
    assert table["L1"].tolist() == pytest.approx([0.7501, 0.0], abs=1e-4)
    assert table["L2"].tolist() == pytest.approx([np.sqrt(0.3125), 0.0], abs=1e-4)
    assert "test index" not in counterfactual_table(two_digits(), CLASSES)


def test_digits_are_enlarged_to_sharp_squares():
    table = counterfactual_table(two_digits(), CLASSES)
    original = table["original"][0]
    assert isinstance(original, Image.Image)
    assert original.size == (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE) == (84, 84)
    assert original.mode == "L"
    pixels = np.asarray(table["counterfactual"][0])
    # Pixel (2, 3) became a 3x3 block of 255 (0.5 + 0.5), nearest neighbour, no blur around it.
    assert (pixels[6:9, 9:12] == 255).all()
    assert pixels[5, 9] == pixels[6, 8] == 128


def test_a_photo_keeps_its_size_and_colours():
    photo = np.random.default_rng(0).random((120, 100, 3)).astype(np.float32)
    image = table_image(photo)
    assert image.size == (100, 120) and image.mode == "RGB"
    assert np.asarray(image)[7, 9].tolist() == np.round(photo[7, 9] * 255).astype(int).tolist()


def test_the_change_is_red_where_brighter_and_blue_where_darker():
    result = two_digits()
    change = np.asarray(change_image(result.perturbations[0]))
    assert change.shape == (84, 84, 3)
    factor = 84 // 28
    at = lambda row, column: change[row * factor, column * factor].tolist()  # noqa: E731
    assert at(2, 3) == [255, 0, 0]  # the largest change, brighter: full red
    assert at(4, 5) == [128, 128, 255]  # half as large, darker: half-strength blue
    assert at(0, 0) == [255, 255, 255]  # unchanged: white
    unchanged = np.asarray(change_image(result.perturbations[1]))
    assert (unchanged == 255).all()


def test_bad_inputs_say_what_is_expected():
    with pytest.raises(ValueError, match="class_names has 3 entries; expected 10"):
        counterfactual_table(two_digits(), CLASSES[:3])
    with pytest.raises(ValueError, match=r"test_indices has shape \(1,\); expected \(2,\)"):
        counterfactual_table(two_digits(), CLASSES, test_indices=[1])
    with pytest.raises(ValueError, match="expected a CounterfactualResult"):
        counterfactual_table({"originals": []}, CLASSES)
    with pytest.raises(ValueError, match=r"expected \(H, W, C\) with 1 or 3 channels"):
        table_image(np.zeros((4, 4, 2)))


@pytest.fixture()
def store(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch)


def test_a_logged_table_holds_its_images_in_the_run(store):
    with tracking.stage_run("counterfactuals", root=store, experiment="unit", uri=None,
                            enabled=True, params={}) as run:
        path = log_counterfactual_table(two_digits(), CLASSES, "base.sampled.elastic_net",
                                        test_indices=[17, 4])
    assert path == "tables/base.sampled.elastic_net.json"
    client = store_client(store)
    run_id = run.info.run_id
    stored = json.loads(open(client.download_artifacts(run_id, path)).read())
    assert stored["columns"][:4] == ["test index", "original", "counterfactual", "change"]
    assert [row[0] for row in stored["data"]] == [17, 4]
    first_original = stored["data"][0][1]
    assert first_original["type"] == "image"
    with Image.open(client.download_artifacts(run_id, first_original["filepath"])) as image:
        assert image.size == (84, 84)
    # MLflow lists the table among the run's logged tables, which the UI shows as tables.
    logged = json.loads(client.get_run(run_id).data.tags["mlflow.loggedArtifacts"])
    assert {"path": path, "type": "table"} in logged


def test_without_a_run_no_table_is_made(store):
    assert log_counterfactual_table(two_digits(), CLASSES, "base.sampled.elastic_net") is None
    assert not (store / "mlflow.db").exists()
