"""The model registry against a real SQLite store: versions with their tags, the ``best`` alias
among versions trained on the same data, ``latest-<module>``, and loading ``@best`` back."""

import numpy as np
import pytest
from support.tracking_store import make_project, set_data_digest, store_client

from pixelflip.tracking import model_registry
from pixelflip.tracking import runs as tracking

NAME = "pixelflip-classifier"


@pytest.fixture()
def project(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)


def image_classifier(bias):
    """A tiny image classifier whose predictions depend on ``bias``, so models differ."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    weights, _ = model.layers[-1].get_weights()
    model.layers[-1].set_weights([weights, np.array([bias, -bias], dtype=np.float32)])
    return model


def train_and_register(root, model, images, **tags):
    """One ``train`` stage that logs and registers ``model``; returns (run id, version)."""
    with tracking.stage_run("train", root=root, experiment="unit", uri=None, enabled=True,
                            params={}) as run:
        version = model_registry.log_keras_model(model, "base", images, registered_model_name=NAME,
                                           tags=tags)
    return run.info.run_id, version


def best_alias(project):
    """``update_best_alias`` as a stage calls it: inside its run, for the current data."""
    with tracking.stage_run("evaluate", root=project, experiment="unit", uri=None, enabled=True,
                            params={}):
        return model_registry.update_best_alias(NAME, data_sha256=tracking.data_sha256(project))


def test_versions_carry_their_tags_and_the_best_alias_loads_back(project, images):
    import mlflow

    models = [image_classifier(bias) for bias in (0.0, 2.0, 4.0, 6.0)]
    run_id, first = train_and_register(project, models[0], images, module="base",
                                       val_accuracy=0.8, test_accuracy=0.79)
    _, second = train_and_register(project, models[1], images, module="se", val_accuracy=0.9)
    # Better on paper, but on other data: it must not compete with the two above.
    set_data_digest(project, "other-data")
    _, third = train_and_register(project, models[2], images, module="se", val_accuracy=0.99)
    # No score at all: never a candidate.
    set_data_digest(project, "abc123")
    _, fourth = train_and_register(project, models[3], images, module="cbam")
    assert [first, second, third, fourth] == ["1", "2", "3", "4"]

    assert best_alias(project) == "2"
    client = store_client(project)
    assert str(client.get_model_version_by_alias(NAME, "best").version) == "2"
    assert str(client.get_model_version_by_alias(NAME, "latest-se").version) == "3"
    assert str(client.get_model_version_by_alias(NAME, "latest-cbam").version) == "4"

    version = client.get_model_version(NAME, "1")
    assert version.run_id == run_id
    assert {key: version.tags[key] for key in ("module", "val_accuracy", "test_accuracy",
                                               "pixelflip.data_sha256", "pixelflip.pipeline_id",
                                               "pixelflip.stage", "dvc.exp_name")} == {
        "module": "base", "val_accuracy": "0.8", "test_accuracy": "0.79",
        "pixelflip.data_sha256": "abc123", "pixelflip.pipeline_id": "test-pipeline-1",
        "pixelflip.stage": "train", "dvc.exp_name": "tiny-exp"}
    assert client.get_model_version(NAME, "3").tags["pixelflip.data_sha256"] == "other-data"

    expected = models[1].predict(images, verbose=0)
    loaded = mlflow.tensorflow.load_model(f"models:/{NAME}@best")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-6)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@best")
    assert pyfunc.metadata.get_input_schema().inputs[0].shape == (-1, 8, 8, 3)
    np.testing.assert_allclose(np.asarray(pyfunc.predict(images)), expected, rtol=1e-6)

    # Without a digest every scored version competes: the one on other data wins.
    with tracking.stage_run("evaluate", root=project, experiment="unit", uri=None, enabled=True,
                            params={}):
        assert model_registry.update_best_alias(NAME) == "3"


def test_a_tie_goes_to_the_newest_version(project, images):
    model = image_classifier(0.0)
    for _ in range(2):
        train_and_register(project, model, images, module="base", val_accuracy=0.9)
    with tracking.stage_run("evaluate", root=project, experiment="unit", uri=None, enabled=True,
                            params={}):
        assert model_registry.update_best_alias(NAME, alias="top") == "2"
        # A digest no version was trained on: nothing to alias, and "top" stays where it was.
        assert model_registry.update_best_alias(NAME, alias="top", data_sha256="unseen") is None
        assert model_registry.update_best_alias(NAME, metric="test_accuracy") is None
    client = store_client(project)
    assert str(client.get_model_version_by_alias(NAME, "top").version) == "2"
    assert "best" not in client.get_registered_model(NAME).aliases


def test_logging_without_a_name_registers_nothing(project, images):
    with tracking.stage_run("train", root=project, experiment="unit", uri=None, enabled=True,
                            params={}) as run:
        assert model_registry.log_keras_model(image_classifier(0.0), "base", images,
                                        tags={"module": "base"}) is None
    client = store_client(project)
    assert client.search_registered_models() == []
    experiment_id = client.get_run(run.info.run_id).info.experiment_id
    logged = [(model.name, model.tags.get("module"))
              for model in client.search_logged_models([experiment_id])
              if model.source_run_id == run.info.run_id]
    assert logged == [("base", "base")]


def test_registry_helpers_do_nothing_without_an_active_run(tmp_path, monkeypatch, images):
    monkeypatch.chdir(tmp_path)
    assert model_registry.log_keras_model(image_classifier(0.0), "base", images,
                                    registered_model_name=NAME) is None
    assert model_registry.register_version("models:/m-1", NAME) is None
    assert model_registry.update_best_alias(NAME) is None
    # No store was opened: nothing written where the stage runs.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, data_sha256", [("", None), ("it's", None), (NAME, "a'b")])
def test_names_that_would_break_the_search_filter_are_refused(name, data_sha256):
    # Refused with or without a run, so a bad name fails the same way with tracking off.
    with pytest.raises(ValueError, match="without quotes"):
        model_registry.update_best_alias(name, data_sha256=data_sha256)
    if data_sha256 is None:
        with pytest.raises(ValueError, match="registered_model_name=.*without quotes"):
            model_registry.register_version("models:/m-1", name)
        with pytest.raises(ValueError, match="without quotes"):
            model_registry.log_keras_model(None, "base", None, registered_model_name=name)
