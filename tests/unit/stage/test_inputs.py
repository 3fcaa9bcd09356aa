"""A damaged or missing input names its file, what is wrong and the stage that rebuilds it."""

import shutil
import zipfile

import numpy as np
import pytest
import yaml

from pixelflip.stage.inputs import (
    InputFileError,
    MissingInputError,
    check_model_file,
    load_npy_input,
    load_npz_input,
    producing_stage,
    read_json_input,
)
from tests.support.project import ROOT


@pytest.fixture()
def project(tmp_path):
    """An empty project folder with this project's dvc.yaml and params.yaml."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def _attention_module(project) -> str:
    return yaml.safe_load((project / "params.yaml").read_text())["attention"]["modules"][0]


def _write(path, content: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _keras_like_zip(path, members=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    members = members or {"config.json": b"{}", "model.weights.h5": bytes(range(256)) * 64}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_the_producing_stage_comes_from_dvc_yaml_outs(project):
    module = _attention_module(project)
    assert producing_stage(project / "data/prepared/classes.json") == "validate"
    assert producing_stage(project / "data/selected/base/sampled.npz") == "select"
    assert producing_stage(project / "models/base.keras") == "train"
    assert producing_stage(project / f"models/attention/{module}.keras") == f"attention@{module}"
    assert producing_stage(project / "metrics/train.json") == "train"
    assert producing_stage(project / "params.yaml") is None


def test_garbage_json_names_the_file_the_problem_and_the_stage(project):
    path = _write(project / "data/prepared/classes.json", b"")
    with pytest.raises(InputFileError) as caught:
        read_json_input(path)
    message = str(caught.value)
    assert str(path) in message
    assert "is not valid JSON" in message
    assert "`dvc repro validate`" in message
    _write(path, b"\xff\xfe garbage")
    with pytest.raises(InputFileError, match="is not text"):
        read_json_input(path)


def test_a_missing_input_is_also_a_file_not_found_error(project):
    module = _attention_module(project)
    path = project / "metrics" / "attention" / f"{module}.json"
    with pytest.raises(MissingInputError) as caught:
        read_json_input(path)
    assert isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, ValueError)
    assert f"{path} does not exist; run `dvc repro attention@{module}`" in str(caught.value)


def test_a_file_outside_every_project_gets_a_generic_hint(tmp_path):
    path = _write(tmp_path / "loose.json", b"{")
    with pytest.raises(InputFileError, match=r"loose\.json is not valid JSON.*`dvc repro`"):
        read_json_input(path)


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_garbage_and_truncated_npy_never_suggest_unpickling(project, mmap_mode):
    garbage = _write(project / "data/prepared/test_images.npy", b"garbage" * 10)
    np.save(project / "data/prepared/test_labels.npy", np.arange(1000))
    truncated = project / "data/prepared/test_labels.npy"
    truncated.write_bytes(truncated.read_bytes()[:200])
    for path in (garbage, truncated):
        with pytest.raises(InputFileError) as caught:
            load_npy_input(path, mmap_mode=mmap_mode)
        message = str(caught.value)
        assert message.startswith(f"{path} is not a complete .npy array")
        assert "`dvc repro validate`" in message
        for numpy_words in ("pickle", "allow_pickle", "mmap length"):
            assert numpy_words not in message


def test_a_good_npy_loads_and_a_npz_is_not_a_npy(project):
    path = project / "data/prepared/train_labels.npy"
    path.parent.mkdir(parents=True)
    np.save(path, np.arange(5))
    assert load_npy_input(path, mmap_mode="r").tolist() == [0, 1, 2, 3, 4]
    archive = project / "data/prepared/train_images.npy"
    with open(archive, "wb") as handle:
        np.savez(handle, images=np.zeros(3))
    with pytest.raises(InputFileError, match="is a .npz archive where a .npy array"):
        load_npy_input(archive)


def test_truncated_npz_and_missing_arrays_name_the_file_and_select(project):
    path = project / "data/selected/base/sampled.npz"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, indices=np.arange(4000), labels=np.ones(4000))
    assert load_npz_input(path)["indices"].shape == (4000,)
    with pytest.raises(InputFileError, match=r"lacks the fields \['images'\]"):
        load_npz_input(path, fields=("indices", "images"))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputFileError) as caught:
        load_npz_input(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a complete .npz archive")
    assert "`dvc repro select`" in message


def test_a_damaged_npz_member_is_reported_when_read(project):
    path = project / "data/selected/base/sampled.npz"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        np.savez(handle, indices=np.arange(4000))  # stored: the array bytes sit in the file
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF  # one flipped byte inside the member: a CRC error
    path.write_bytes(bytes(content))
    with pytest.raises(InputFileError, match=r"sampled\.npz is not a complete .npz.*CRC"):
        load_npz_input(path)


def test_model_file_checks_name_the_model_and_its_training_stage(project):
    module = _attention_module(project)
    base = _keras_like_zip(project / "models/base.keras")
    assert check_model_file(base) == base
    base.write_bytes(base.read_bytes()[:-100])  # truncated: the central directory is gone
    with pytest.raises(InputFileError) as caught:
        check_model_file(base)
    assert str(caught.value) == (f"{base} is not a Keras model file (not a zip; truncated or "
                                 "overwritten); run `dvc repro train` to rebuild it.")
    attention = project / "models" / "attention" / f"{module}.keras"
    with pytest.raises(MissingInputError, match=f"run `dvc repro attention@{module}`"):
        check_model_file(attention)
    _keras_like_zip(attention, {"notes.txt": b"not a model"})
    with pytest.raises(InputFileError, match="without config.json"):
        check_model_file(attention)


def test_a_model_member_with_a_bad_crc_is_named(project):
    path = _keras_like_zip(project / "models/base.keras")
    content = bytearray(path.read_bytes())
    position = content.index(bytes(range(256))) + 10
    content[position] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(InputFileError, match="member 'model.weights.h5' fails its CRC"):
        check_model_file(path)
