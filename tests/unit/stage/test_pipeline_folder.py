"""Pipeline folders: the root dvc.yaml derived line by line for a folder below the root, and a
params.yaml that is the root one with a profile's values written in, comments kept."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.project import ROOT
from support.shipped_files import assert_one_version_passes

from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import Params, load_params
from pixelflip.stage.pipeline_folder import (
    derived_pipeline,
    main,
    params_with_profile,
    stale_pipeline,
    write_pipeline_folder,
)

CATS_VS_DOGS = Path("pipelines/cats-vs-dogs")

ROOT_PIPELINE = """\
# The pipeline. Paths match src/pixelflip/stage/layout.py.
stages:
  train:
    cmd: python stages/train.py
    deps:
      - stages/train.py
      - src/pixelflip/models
      - data/prepared
    params:
      - train
    outs:
      - models/base.keras
  attention:
    foreach: [se, gc]
    do:
      # Not stages/select.py: a comment names a path too.
      cmd: python stages/attention.py ${item}
      deps:
        - stages/attention.py
        - data/stages/notes.txt
      outs:
        - models/${item}.keras
"""

ROOT_PARAMS = """\
# Every knob of the pipeline.
seed: 42                      # drives every random choice

data:
  source: mnist               # mnist | folder | kaggle
  path: null                  # for source folder
  classes: null               # {folder name: label}

train:
  backbone: simple_cnn        # simple_cnn | separable_resnet (photos) |
                              # efficientnet_b0 | vgg16
  conv_filters: [32, 64]      # one feature block per entry
  epochs: 12
  augment:                    # training batches only
    horizontal_flip: false    # photos yes; digits no

tracking:
  experiment: pixelflip
  registered_model: pixelflip-classifier  # every trained model is a version
"""

PROFILE = {
    "data": {"source": "folder", "path": "../../../shared/photos",
             "classes": {"Cat": "cat", "Dog": "dog"}},
    "train": {"backbone": "separable_resnet", "conv_filters": [8, 8, 16],
              "augment": {"horizontal_flip": True}},
    "tracking": {"experiment": "photos", "registered_model": "photos-classifier-with-a-long-name"},
}


def make_root(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvc.yaml").write_text(ROOT_PIPELINE)
    (root / "params.yaml").write_text(ROOT_PARAMS)
    return root


# --- dvc.yaml -------------------------------------------------------------------------------


def test_code_paths_point_back_to_the_root():
    derived = derived_pipeline(ROOT_PIPELINE, CATS_VS_DOGS)
    stages = yaml.safe_load(derived)["stages"]
    assert stages["train"]["cmd"] == "python ../../stages/train.py"
    assert stages["train"]["deps"] == ["../../stages/train.py", "../../src/pixelflip/models",
                                       "data/prepared"]
    assert stages["attention"]["do"]["cmd"] == "python ../../stages/attention.py ${item}"
    assert stages["attention"]["do"]["deps"] == ["../../stages/attention.py",
                                                 "data/stages/notes.txt"]


def test_data_paths_and_comments_stay_as_they_are():
    derived = derived_pipeline(ROOT_PIPELINE, CATS_VS_DOGS)
    stages = yaml.safe_load(derived)["stages"]
    # Outputs land in the folder, where DVC runs the commands.
    assert stages["train"]["outs"] == ["models/base.keras"]
    assert stages["train"]["params"] == ["train"]
    assert stages["attention"]["do"]["outs"] == ["models/${item}.keras"]
    assert "# The pipeline. Paths match src/pixelflip/stage/layout.py.\n" in derived
    assert "      # Not stages/select.py: a comment names a path too.\n" in derived


@pytest.mark.parametrize("folder, back", [("photos", "../"),
                                          ("pipelines/cats-vs-dogs", "../../"),
                                          ("a/b/c", "../../../")])
def test_every_line_is_kept_and_only_code_paths_change(folder, back):
    derived = derived_pipeline(ROOT_PIPELINE, Path(folder))
    # The generated header says where the file comes from and how to regenerate it.
    assert derived.startswith(f"# Generated from {back}dvc.yaml by\n")
    assert f"python -m pixelflip.stage.pipeline_folder {folder}\n" in derived
    root_lines = ROOT_PIPELINE.splitlines()
    derived_lines = derived.splitlines()[-len(root_lines):]
    assert [line.replace(back, "", 1) for line in derived_lines] == root_lines
    changed = [line for line, root in zip(derived_lines, root_lines, strict=True)
               if line != root]
    assert len(changed) == 5
    assert all(f"{back}stages/" in line or f"{back}src/" in line for line in changed)


def test_the_real_root_pipeline_keeps_its_stages():
    root_text = (ROOT / "dvc.yaml").read_text()
    derived = derived_pipeline(root_text, CATS_VS_DOGS)
    root_lines = root_text.splitlines()
    assert [line.replace("../../", "", 1)
            for line in derived.splitlines()[-len(root_lines):]] == root_lines
    root_stages = yaml.safe_load(root_text)["stages"]
    stages = yaml.safe_load(derived)["stages"]
    assert list(stages) == list(root_stages)
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        root_stage = root_stages[name].get("do", root_stages[name])
        assert stage["cmd"] == root_stage["cmd"].replace("python stages/", "python ../../stages/")
        assert stage.get("outs") == root_stage.get("outs")
        assert stage.get("params") == root_stage.get("params")
        assert stage.get("metrics") == root_stage.get("metrics")


@pytest.mark.parametrize("folder", ["/abs/pipelines/photos", "../elsewhere",
                                    "pipelines/../../elsewhere", "."])
def test_a_folder_not_below_the_root_is_refused(folder):
    with pytest.raises(ValueError, match="must be a relative path below the project root"):
        derived_pipeline(ROOT_PIPELINE, Path(folder))


def test_the_committed_photo_pipeline_is_the_one_derived_from_the_root():
    # The folder's dvc.yaml is generated; an edit of the root dvc.yaml must regenerate it
    # (python -m pixelflip.stage.pipeline_folder pipelines/cats-vs-dogs).
    assert stale_pipeline(ROOT, CATS_VS_DOGS) is None


def test_stale_pipeline_says_what_is_wrong(tmp_path):
    root = make_root(tmp_path)
    folder = Path("pipelines/photos")
    assert stale_pipeline(root, folder) == f"{root / folder / 'dvc.yaml'} is missing"
    write_pipeline_folder(root, folder, profile=None, write_params=False)
    assert stale_pipeline(root, folder) is None
    # The root pipeline changed; the folder's did not follow.
    (root / "dvc.yaml").write_text(ROOT_PIPELINE + "  compare:\n    cmd: python stages/c.py\n")
    problem = stale_pipeline(root, folder)
    assert problem is not None and problem.startswith(
        f"{root / folder / 'dvc.yaml'} is not the one derived from {root / 'dvc.yaml'}")
    assert problem.endswith("python -m pixelflip.stage.pipeline_folder pipelines/photos")


# --- params.yaml ----------------------------------------------------------------------------


def test_params_with_profile_replaces_the_values_and_keeps_every_comment():
    text = params_with_profile(ROOT_PARAMS, PROFILE)
    lines, root_lines = text.splitlines(), ROOT_PARAMS.splitlines()
    assert len(lines) == len(root_lines)
    assert "  backbone: separable_resnet  # simple_cnn | separable_resnet (photos) |" in lines
    assert "  conv_filters: [8, 8, 16]    # one feature block per entry" in lines
    assert "    horizontal_flip: true     # photos yes; digits no" in lines
    assert "  classes: {Cat: cat, Dog: dog} # {folder name: label}" in lines
    # A value too long for the comment's column pushes the comment right, one space after.
    assert ("  registered_model: photos-classifier-with-a-long-name # every trained model is a "
            "version") in lines
    for line, root_line in zip(lines, root_lines, strict=True):
        if "#" in root_line:
            assert line.endswith(root_line[root_line.index("#"):])
        # Indentation decides the nesting: it never changes.
        assert len(line) - len(line.lstrip()) == len(root_line) - len(root_line.lstrip())
    # What the profile does not name is the root's line, byte for byte.
    assert lines[root_lines.index("  epochs: 12")] == "  epochs: 12"
    assert lines[1] == root_lines[1] and lines[0] == root_lines[0]


def test_params_with_profile_reads_back_as_the_root_params_merged_with_the_profile(tmp_path):
    text = params_with_profile(ROOT_PARAMS, PROFILE)
    expected = yaml.safe_load(ROOT_PARAMS)
    for section, values in PROFILE.items():
        expected[section] = {**expected[section], **values}
    expected["train"]["augment"] = {"horizontal_flip": True}
    assert yaml.safe_load(text) == expected

    # The real params.yaml with a profile loads through the typed checks with the new values.
    # As shipped, one knob a line: after `dvc exp run -S` the working copy has DVC's layout
    # (lists one item a line), which params_with_profile refuses, and HEAD's is the shipped one.
    def takes_a_profile(shipped):
        real = params_with_profile(shipped.read_text(), {
            "train": {"backbone": "separable_resnet", "conv_filters": [8, 16, 32]},
            "tracking": {"experiment": "photos"}})
        path = tmp_path / "params.yaml"
        path.write_text(real)
        params = load_params(path)
        assert params.train.backbone == "separable_resnet"
        assert params.train.conv_filters == [8, 16, 32]
        assert params.tracking.experiment == "photos"
        assert params.train.epochs == load_params(shipped).train.epochs

    assert_one_version_passes(ROOT, "params.yaml", tmp_path / "shipped", takes_a_profile)


def test_a_string_yaml_would_read_as_another_type_is_quoted():
    text = params_with_profile(ROOT_PARAMS, {"tracking": {"experiment": "yes"},
                                             "data": {"path": "a: b"}})
    loaded = yaml.safe_load(text)
    assert loaded["tracking"]["experiment"] == "yes"
    assert loaded["data"]["path"] == "a: b"


def test_an_empty_profile_leaves_the_params_unchanged():
    assert params_with_profile(ROOT_PARAMS, {}) == ROOT_PARAMS
    real = (ROOT / "params.yaml").read_text()
    assert params_with_profile(real, {}) == real


@pytest.mark.parametrize("values, key", [
    ({"train": {"epoch": 3}}, "train.epoch"),
    ({"bogus": 1}, "bogus"),
    ({"train": {"augment": {"rotation": 0.1}}}, "train.augment.rotation"),
])
def test_a_key_the_root_params_do_not_have_is_refused_by_name(values, key):
    with pytest.raises(ParamsError, match=rf"^{key}: not a knob of the root params.yaml$"):
        params_with_profile(ROOT_PARAMS, values)


def test_params_are_written_when_absent_or_asked_to(tmp_path):
    root = make_root(tmp_path)
    folder = Path("pipelines/photos")
    written = write_pipeline_folder(root, folder, profile=PROFILE, write_params=False,
                                    origin="python -m pixelflip.stage.pipeline_folder "
                                           "pipelines/photos -S train.epochs=2")
    assert written == [root / folder / "dvc.yaml", root / folder / "params.yaml"]
    params_text = (root / folder / "params.yaml").read_text()
    assert params_text.startswith("# This pipeline's own params: ../../params.yaml with other "
                                  "values written in by\n#   python -m pixelflip.stage."
                                  "pipeline_folder pipelines/photos \\\n#     -S train.epochs=2\n")
    assert yaml.safe_load(params_text)["train"]["backbone"] == "separable_resnet"
    # The folder's params are its own once written: a second run leaves them alone...
    (root / folder / "params.yaml").write_text(params_text.replace("epochs: 12", "epochs: 3"))
    assert write_pipeline_folder(root, folder, profile={}, write_params=False) == [
        root / folder / "dvc.yaml"]
    assert "epochs: 3" in (root / folder / "params.yaml").read_text()
    # ...unless asked to rewrite them.
    assert write_pipeline_folder(root, folder, profile=None, write_params=True)[-1] == (
        root / folder / "params.yaml")
    assert yaml.safe_load((root / folder / "params.yaml").read_text()) == yaml.safe_load(
        ROOT_PARAMS)


# The folder's params as committed: `make cats-vs-dogs DATA=...` (a `dvc exp run -S data.source=...
# -S data.path=...` in the folder) leaves other values in its working copy.
PHOTO_PARAMS = (CATS_VS_DOGS / "params.yaml").as_posix()


def test_the_committed_photo_params_are_complete_and_their_own(tmp_path):
    def complete_and_their_own(path):
        raw = yaml.safe_load(path.read_text())
        # data.path is read from the folder the stages run in, two levels below the root.
        assert raw["data"]["source"] == "folder"
        assert raw["data"]["path"].startswith("../../")
        # Every knob is there (partial=False); data.path's existence is the one check that
        # depends on this machine, so it points at a folder that exists.
        params = load_params(path, overrides={"data": {"path": str(tmp_path)}}, partial=False)
        assert params.train.backbone == "separable_resnet"
        assert len(params.train.conv_filters) >= 2
        assert params.data.color_mode == "rgb"
        # Its runs and models stay apart from the digits pipeline's in the shared MLflow store.
        assert params.tracking.experiment != Params().tracking.experiment
        assert params.tracking.registered_model != Params().tracking.registered_model

    assert_one_version_passes(ROOT, PHOTO_PARAMS, tmp_path, complete_and_their_own)


def test_the_committed_photo_params_fail_only_on_a_missing_data_folder(tmp_path, monkeypatch):
    # From a folder where data.path leads nowhere, the data folder is all that is refused.
    here = tmp_path / "a" / "b" / "c"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)

    def fails_on_the_data_folder(path):
        with pytest.raises(ParamsError, match=r"data\.path = '\.\./\.\./.*' does not exist"):
            load_params(path, partial=False)

    assert_one_version_passes(ROOT, PHOTO_PARAMS, tmp_path, fails_on_the_data_folder)


# --- command line ---------------------------------------------------------------------------


def test_the_command_line_writes_and_checks_a_folder(tmp_path, monkeypatch, capsys):
    root = make_root(tmp_path)
    profile = tmp_path / "photos.yaml"
    profile.write_text("train:\n  backbone: separable_resnet\n")
    monkeypatch.chdir(root)
    assert main(["pipelines/photos", "--profile", str(profile), "-S", "train.epochs=2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "[pipeline_folder] wrote pipelines/photos/dvc.yaml",
        "[pipeline_folder] wrote pipelines/photos/params.yaml"]
    params = yaml.safe_load((root / "pipelines/photos/params.yaml").read_text())
    assert (params["train"]["backbone"], params["train"]["epochs"]) == ("separable_resnet", 2)
    assert main(["pipelines/photos", "--check"]) == 0
    assert "pipelines/photos/dvc.yaml is up to date" in capsys.readouterr().out
    (root / "dvc.yaml").write_text(ROOT_PIPELINE.replace("models/base.keras", "models/b.keras"))
    assert main(["pipelines/photos", "--check"]) == 1
    assert "is not the one derived from" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["pipelines/photos", "-S", "train.epoch=2"], "train.epoch: not a knob"),
    (["pipelines/photos", "--profile", "nope"], "profile profiles/nope.yaml not found"),
    (["pipelines/photos", "-S", "train.epochs"], "is not key=value"),
])
def test_the_command_line_reports_a_bad_request_in_one_line(tmp_path, monkeypatch, capsys,
                                                            arguments, message):
    monkeypatch.chdir(make_root(tmp_path))
    assert main(arguments) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("[pipeline_folder] error: ") and message in line


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_a_folder_outside_the_project_is_refused_before_anything_is_written(
        tmp_path, monkeypatch, capsys, where):
    root = make_root(tmp_path / "project")
    outside = tmp_path / "outside" / "photos"
    folder = str(outside) if where == "absolute" else "../outside/photos"
    monkeypatch.chdir(root)
    assert main([folder]) == 2
    assert "must be a relative path below the project root" in capsys.readouterr().err
    assert not (tmp_path / "outside").exists()
    with pytest.raises(ValueError, match="must be a relative path below the project root"):
        write_pipeline_folder(root, Path(folder), profile=None, write_params=True)
    assert not (tmp_path / "outside").exists()


def test_the_module_checks_the_committed_folder_from_the_shell():
    result = subprocess.run(
        [sys.executable, "-m", "pixelflip.stage.pipeline_folder", str(CATS_VS_DOGS), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert "pipelines/cats-vs-dogs/dvc.yaml is up to date" in result.stdout
