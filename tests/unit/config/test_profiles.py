"""Profiles: a versioned file of the params that differ from params.yaml, checked by the same
loader, reaching DVC as `dvc exp run -S` flags that DVC reads back to the same values."""

import shutil

import pytest
import yaml
from support.project import ROOT
from support.shipped_files import default_params_text

from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import load_params
from pixelflip.config.profiles import (
    check_profile,
    main,
    parse_overrides,
    profile_path,
    read_profile,
    set_param_flags,
)

PHOTOS = profile_path("cats-vs-dogs", ROOT)


@pytest.fixture
def params_file(tmp_path):
    """A complete params.yaml of the defaults (which the shipped one holds), not the working
    copy: `dvc exp run -S` leaves any valid value there, some of them not valid under a profile."""
    path = tmp_path / "params.yaml"
    path.write_text(default_params_text())
    return path


def test_the_photo_profile_is_valid_over_the_shipped_params(params_file):
    params = check_profile(read_profile(PHOTOS), params_file)
    assert (params.data.source, params.data.image_size, params.data.color_mode) == (
        "kaggle", 128, "rgb")
    assert params.train.backbone == "separable_resnet"
    assert params.train.conv_filters == [32, 64, 128, 256]
    assert params.train.augment.horizontal_flip is True
    # What the profile does not name stays as params.yaml says.
    assert params.attention.modules == load_params(params_file).attention.modules


def test_dvc_reads_the_flags_back_as_the_profile_values(tmp_path, params_file):
    # `dvc exp run -S` applies its flags with this very function (Hydra's override grammar).
    from dvc.utils.hydra import apply_overrides

    profile = {**read_profile(PHOTOS), "data": {**read_profile(PHOTOS)["data"],
                                                "source": "folder", "path": str(tmp_path),
                                                "classes": {"Cat": "cat", "Dog": "dog"}}}
    flags = set_param_flags(profile)
    assert flags[0::2] == ["-S"] * (len(flags) // 2)
    assert "train.conv_filters=[32,64,128,256]" in flags
    assert "train.backbone=separable_resnet" in flags
    copy = tmp_path / "experiment" / "params.yaml"
    copy.parent.mkdir()
    shutil.copy(params_file, copy)
    apply_overrides(copy, flags[1::2])
    assert load_params(copy) == check_profile(profile, params_file)


def test_a_bad_key_in_a_profile_is_named_before_anything_runs(tmp_path, params_file):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ParamsError, match=r"unknown key 'train.epoch' \(did you mean "
                                          r"'train.epochs'\?\)"):
        check_profile(read_profile(bad), params_file)


def test_a_missing_profile_lists_the_profiles_there_are():
    with pytest.raises(ParamsError, match="profiles in .*: cats-vs-dogs"):
        read_profile(profile_path("nope", ROOT))


def test_overrides_are_read_as_dvc_reads_them():
    assert parse_overrides(["train.epochs=5", "data.path=/x y", "train.weights=none"]) == {
        "train": {"epochs": 5, "weights": "none"}, "data": {"path": "/x y"}}
    with pytest.raises(ParamsError, match="is not key=value"):
        parse_overrides(["train.epochs"])


def test_a_value_the_flag_grammar_would_change_is_refused():
    # "true" as a string would come back from -S as a boolean.
    with pytest.raises(ParamsError, match="cannot be passed as a -S flag"):
        set_param_flags({"tracking": {"experiment": "true"}})


def test_the_command_line_prints_the_flags_or_one_error_line(capsys, monkeypatch, tmp_path,
                                                             params_file):
    # Run from a project root holding the profiles and the default params.yaml.
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    monkeypatch.chdir(tmp_path)
    assert main(["cats-vs-dogs", "-S", "train.epochs=5"]) == 0
    printed = capsys.readouterr().out.split()
    assert "train.epochs=5" in printed and "train.epochs=20" not in printed
    assert main(["cats-vs-dogs", "-S", "data.source=folder"]) == 2
    assert capsys.readouterr().err == ("[profiles] error: cats-vs-dogs: params.yaml: data.path is required "
                                       "when data.source is 'folder': set it to a folder or zip "
                                       "of class folders\n")
    assert yaml.safe_load(PHOTOS.read_text())  # the profile file stays plain YAML
