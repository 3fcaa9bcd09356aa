"""The stage frame: params checked first, only declared keys readable, exactly those logged,
and every bad input one line on stderr with exit status 2."""

import shutil

import pytest
from support.project import ROOT
from support.tracking_store import make_project, store_client

from pixelflip.stage.frame import EXIT_BAD_INPUT, StageError, run_stage

DVC_YAML = """
stages:
  probe:
    cmd: python probe.py
    params: [seed, select.num_images, attention.pam]
"""


def stage_lines(stderr):
    """What the stage itself printed (MLflow logs its own INFO lines on creating a store)."""
    return [line for line in stderr.splitlines() if line.startswith("[probe]")]


@pytest.fixture
def project(tmp_path, monkeypatch):
    make_project(tmp_path, monkeypatch)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_stage_reads_its_declared_params_and_its_run_logs_exactly_those(project, capsys):
    seen = {}
    run_stage("probe", lambda params: seen.update(images=params.select.num_images,
                                                 seed=params.seed))
    assert seen == {"images": 32, "seed": 42}
    assert "[probe] done in" in capsys.readouterr().out
    client = store_client(project)
    (run,) = [run for run in client.search_runs(
        [client.get_experiment_by_name("pixelflip").experiment_id])
        if run.info.run_name == "probe"]
    assert run.data.params == {"seed": "42", "select.num_images": "32",
                               "attention.pam.reduction_ratio": "8"}
    assert run.info.status == "FINISHED"


def test_reading_an_undeclared_key_stops_with_one_line_naming_it(project, capsys):
    with pytest.raises(SystemExit) as exited:
        run_stage("probe", lambda params: params.select.misclassified)
    assert exited.value.code == EXIT_BAD_INPUT
    (error,) = stage_lines(capsys.readouterr().err)
    assert error.startswith("[probe] error: dvc.yaml: stage 'probe' reads "
                            "'select.misclassified'")


def test_a_bad_params_file_stops_before_the_stage_body_runs(project, capsys):
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  num_images: 32", "  num_images: .nan"))
    ran = []
    with pytest.raises(SystemExit) as exited:
        run_stage("probe", ran.append)
    assert exited.value.code == EXIT_BAD_INPUT and ran == []
    assert "[probe] error: params.yaml: select.num_images has the wrong type" in \
        capsys.readouterr().err


def test_unusable_input_found_while_running_is_one_line_too(project, capsys):
    def body(params):
        raise StageError("data/prepared is missing; run `dvc repro validate`")

    with pytest.raises(SystemExit):
        run_stage("probe", body)
    error = capsys.readouterr().err
    assert stage_lines(error) == ["[probe] error: data/prepared is missing; run `dvc repro "
                                  "validate` (PIXELFLIP_DEBUG=1 shows the traceback)"]
    assert "Traceback" not in error


def test_a_stage_dvc_yaml_does_not_declare_is_refused(project, capsys):
    with pytest.raises(SystemExit):
        run_stage("attention@se", lambda params: None)
    assert "dvc.yaml declares no stage 'attention@se'; its stages are: probe" in \
        capsys.readouterr().err
