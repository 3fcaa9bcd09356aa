"""The stage frame: params checked first, only declared keys readable, exactly those logged,
and every bad input one line on stderr with exit status 2."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from support.project import ROOT
from support.shipped_files import default_params_text
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
    # The defaults, not the working copy, where `dvc exp run -S` may have left other values.
    (tmp_path / "params.yaml").write_text(default_params_text())
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


@pytest.mark.parametrize("number, reason", [
    (errno.ENOSPC, "the disk is full: free space and rerun"),
    (errno.EROFS, "the file system is read-only: make it writable and rerun"),
    (errno.EACCES, "permission denied: make it writable by you (chmod u+w) and rerun"),
])
def test_a_full_disk_or_read_only_folder_is_one_line_naming_the_file(project, capsys, number,
                                                                     reason):
    def body(params):
        # What open() raises on such a disk; the tests run as root, for whom chmod cannot
        # make a folder read-only, so the error is raised as the OS would raise it.
        raise OSError(number, os.strerror(number), "data/prepared/images.bin")

    with pytest.raises(SystemExit) as exited:
        run_stage("probe", body)
    assert exited.value.code == EXIT_BAD_INPUT
    assert stage_lines(capsys.readouterr().err) == [
        f"[probe] error: {os.strerror(number)} writing data/prepared/images.bin: {reason}"]


def test_another_os_error_is_a_bug_and_keeps_its_traceback(project):
    def body(params):
        raise OSError(errno.EBADF, "Bad file descriptor")

    with pytest.raises(OSError, match="Bad file descriptor"):
        run_stage("probe", body)


def test_a_terminated_stage_ends_in_one_line_with_status_143(project, tmp_path):
    script = project / "stages" / "probe.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        '"""Probe stage: waits to be stopped."""\n'
        "import pathlib, time\n"
        "from pixelflip.stage.frame import run_stage\n"
        "def main(params):\n"
        "    pathlib.Path('started').write_text('yes')\n"
        "    time.sleep(60)\n"
        "run_stage('probe', main)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLFLOW_TRACKING_URI":
           f"sqlite:///{project / 'mlflow.db'}"}
    stage = subprocess.Popen([sys.executable, str(script)], cwd=project, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if (project / "started").exists() or stage.poll() is not None:
                break
            time.sleep(0.1)
        stage.send_signal(signal.SIGTERM)
        _, stderr = stage.communicate(timeout=60)
    finally:
        stage.kill()
    assert stage.returncode == 128 + signal.SIGTERM, stderr
    assert stage_lines(stderr)[-1].startswith("[probe] interrupted (SIGTERM) after")
    assert "Traceback" not in stderr


def test_help_describes_the_stage_and_its_params_without_running_it(project):
    script = project / "stages" / "probe.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text('"""Probe stage: writes a file."""\n'
                      "import pathlib\n"
                      "from pixelflip.stage.frame import run_stage\n"
                      "run_stage('probe', lambda params: pathlib.Path('ran').write_text('x'))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    helped = subprocess.run([sys.executable, str(script), "--help"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "Probe stage: writes a file." in helped.stdout
    assert "seed, select.num_images, attention.pam" in helped.stdout
    assert not (project / "ran").exists()
