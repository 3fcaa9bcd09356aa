"""Stage scripts run from the folder of the dvc.yaml that runs them: the project root, or a
pipeline folder below it; from anywhere else their outputs would land outside what DVC tracks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.project import ROOT

from pixelflip.stage.console import EXIT_BAD_INPUT, progress, require_project_root, stage_script


@pytest.fixture
def project(tmp_path):
    """A project with a stage script, a pipeline folder and a folder without a dvc.yaml."""
    root = tmp_path / "project"
    (root / "stages").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "stages" / "train.py").write_text("")
    (root / "pipelines" / "photos").mkdir(parents=True)
    (root / "pipelines" / "photos" / "dvc.yaml").write_text("stages: {}\n")
    (root / "reports").mkdir()
    return root


@pytest.fixture
def running_train(project, monkeypatch):
    """This process looks like ``python stages/train.py`` of ``project``."""
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(project / "stages" / "train.py"),
                        raising=False)
    assert stage_script() == (project / "stages" / "train.py").resolve()
    return project


@pytest.mark.parametrize("where", [".", "pipelines/photos"])
def test_a_stage_runs_from_the_root_or_from_a_pipeline_folder(running_train, monkeypatch,
                                                             capsys, where):
    monkeypatch.chdir(running_train / where)
    require_project_root("train")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["stages", "pipelines", "reports", "../elsewhere"])
def test_a_stage_run_from_elsewhere_stops_in_one_line(running_train, monkeypatch, capsys,
                                                      where):
    here = running_train / where
    here.mkdir(parents=True, exist_ok=True)
    # A dvc.yaml outside the project does not make a pipeline folder of it.
    if where == "../elsewhere":
        (here / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(here)
    with pytest.raises(SystemExit) as exited:
        require_project_root("attention@se")
    assert exited.value.code == EXIT_BAD_INPUT
    (line,) = capsys.readouterr().err.splitlines()
    root = running_train.resolve()
    assert line.startswith(f"[attention@se] error: run stage scripts from the project root, "
                           f"where dvc.yaml is: cd {root} && python stages/train.py (or dvc "
                           "repro attention)")
    assert line.endswith("its outputs would land outside the project")


def test_code_that_is_no_stage_script_runs_from_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(tmp_path / "notebook.py"),
                        raising=False)
    assert stage_script() is None
    monkeypatch.chdir(tmp_path)
    require_project_root("train")
    assert capsys.readouterr().err == ""


def test_a_real_stage_script_runs_from_a_pipeline_folder_only(project):
    (project / "stages" / "probe.py").write_text(
        "import pathlib\n"
        "from pixelflip.stage.console import require_project_root\n"
        "require_project_root('probe')\n"
        "pathlib.Path('ran').write_text('yes')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def run_from(folder: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, os.path.relpath(project / "stages" / "probe.py",
                                                               folder)],
                              cwd=folder, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    pipeline = project / "pipelines" / "photos"
    result = run_from(pipeline)
    assert result.returncode == 0, result.stderr
    assert (pipeline / "ran").read_text() == "yes"
    refused = run_from(project / "stages")
    assert refused.returncode == EXIT_BAD_INPUT
    assert "[probe] error: run stage scripts from the project root" in refused.stderr
    assert not (project / "stages" / "ran").exists()


def test_a_progress_line_names_each_loop_outermost_first(capsys):
    progress("counterfactuals", model=(3, 5, "se"), set=(1, 2, "sampled"))
    progress("select", model=(1, 5))
    assert capsys.readouterr().out.splitlines() == [
        "[counterfactuals] model 3/5 se, set 1/2 sampled", "[select] model 1/5"]


@pytest.mark.parametrize("counters", [{}, {"model": (0, 5)}, {"model": (6, 5)}, {"model": 3},
                                      {"model": (1,)}, {"model": (1.0, 2)},
                                      {"model": (True, 2)}, {"model": (1, 2, "se", "extra")}])
def test_a_progress_counter_out_of_range_or_malformed_is_refused(capsys, counters):
    with pytest.raises(ValueError, match="progress"):
        progress("select", **counters)
    assert capsys.readouterr().out == ""
