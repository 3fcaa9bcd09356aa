"""End to end on the Kaggle source: real `dvc repro` whose `download` stage runs the real `kaggle`
client against a local server playing Kaggle's API, serving a PetImages-layout zip with every
known defect of the real archive. No internet, no mock: the client speaks HTTP to 127.0.0.1.
"""

import json

import pandas as pd
import pytest
from support.defects import petimages_members, write_zip
from support.kaggle_server import TEST_KEY, KaggleTestServer
from support.project import copy_project, ran_stages, run

pytestmark = pytest.mark.slow

DATASET = "bhavikjikadara/dog-and-cat-classification-dataset"
# The photo profile (profiles/cats-vs-dogs.yaml: source kaggle, RGB, ...), smaller and with
# the defect archive's tiny images kept, as a user would override it.
PHOTOS = ["-S", "data.image_size=32", "-S", "validate.min_side=8",
          "-S", "validate.val_fraction=0.2", "-S", "validate.test_fraction=0.2"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    archive = tmp_path_factory.mktemp("kaggle") / "petimages.zip"
    members = petimages_members()
    write_zip(archive, members)
    with KaggleTestServer({DATASET: archive.read_bytes()}, redirect=True) as server:
        yield server, members, archive


@pytest.fixture(scope="module")
def project(tmp_path_factory, served):
    server, _, _ = served
    project = copy_project(tmp_path_factory, {})
    home = tmp_path_factory.mktemp("home")
    (home / ".kaggle").mkdir()
    environment = {**server.subprocess_env(credentials=True), "HOME": str(home),
                   "KAGGLE_CONFIG_DIR": str(home / ".kaggle")}
    first = run(["python", "-m", "pixelflip.config.profiles", "cats-vs-dogs", *PHOTOS,
                 "--run", "validate"], project, extra_env=environment)
    return project, environment, first


def test_download_keeps_the_served_zip_and_records_it(project, served):
    project, _, first = project
    server, _, archive = served
    assert ran_stages(first.stdout) == ["check", "download", "validate"]
    source = json.loads((project / "data/raw/source.json").read_text())
    assert source["source"] == "kaggle" and source["dataset"] == DATASET
    assert source["version"] == 1
    zipped = project / "data/raw" / source["archive"]
    assert zipped.read_bytes() == archive.read_bytes()
    assert source["bytes"] == archive.stat().st_size
    assert server.download_requests == 1


def test_every_member_gets_its_exact_status_and_reason(project, served):
    project, _, _ = project
    _, members, _ = served
    manifest = pd.read_csv(project / "data/prepared/manifest.csv", keep_default_na=False)
    outcome = {row.path: (row.status, row.reason) for row in manifest.itertuples()}
    expected = {name: (status, reason) for name, (_, status, reason) in members.items()}
    assert outcome == expected

    usable = [name for name, (_, status, _) in members.items() if status in ("kept", "converted")]
    splits = manifest.set_index("path").loc[usable, "split"]
    assert set(splits) == {"train", "val", "test"}
    data = json.loads((project / "metrics/data.json").read_text())
    assert data["class_counts"] == {
        "Cat": sum(name.startswith("PetImages/Cat/") for name in usable),
        "Dog": sum(name.startswith("PetImages/Dog/") for name in usable),
    }
    assert data["expectations"]["clean"]["success"] is True
    assert data["expectations"]["raw"]["unsuccessful"] >= 1  # the archive had defects


def test_a_second_repro_and_a_forced_download_fetch_nothing(project, served):
    project, environment, _ = project
    server, _, _ = served
    again = run(["dvc", "repro", "validate"], project, extra_env=environment)
    assert ran_stages(again.stdout) == []
    forced = run(["dvc", "repro", "-f", "download"], project, extra_env=environment)
    assert ran_stages(forced.stdout) == ["check", "download"]  # -f forces the upstream check too
    assert server.download_requests == 1


def test_credentials_are_written_nowhere(project):
    project, _, first = project
    assert TEST_KEY not in first.stdout + first.stderr
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts and path.suffix != ".zip":
            assert TEST_KEY.encode() not in path.read_bytes(), path


def test_missing_credentials_stop_the_stage_with_what_to_do(tmp_path_factory, served):
    server, _, _ = served
    project = copy_project(tmp_path_factory, {"data": {"source": "kaggle"}})
    home = tmp_path_factory.mktemp("empty-home")
    environment = {**server.subprocess_env(credentials=False), "HOME": str(home),
                   "KAGGLE_CONFIG_DIR": str(home / ".kaggle")}
    result = run(["dvc", "repro", "download"], project, check=False, extra_env=environment)
    assert result.returncode != 0
    assert "[download] error: No Kaggle credentials found" in result.stderr
    assert "KAGGLE_USERNAME" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "data/raw/source.json").exists()
