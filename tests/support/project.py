"""A copy of the project in a temporary git repository, and running commands in it, for the
end-to-end tests that call real `dvc repro` and `dvc exp run`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support.shipped_files import default_params_text

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "profiles", ".dvcignore", ".gitignore", ".dvc/config",
                 "stages", "src/pixelflip"]


def run(command, cwd, check=True, extra_env=None):
    env = {key: value for key, value in os.environ.items()
           if key not in ("MLFLOW_TRACKING_URI", "PIXELFLIP_PIPELINE_ID", "DVC_EXP_NAME")}
    env.update(extra_env or {})
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               PYTHONPATH=str(cwd / "src"), DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="2",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=1800)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def update_params(project, changes, params_file="params.yaml"):
    path = project / params_file
    params = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        _merge(params[section], values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _merge(target, changes):
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def ran_stages(output):
    return [line.split("'")[1] for line in output.splitlines()
            if line.startswith("Running stage '")]


def mlflow_runs(project):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("pixelflip")
    return client, experiment, client.search_runs([experiment.experiment_id], max_results=500)


def copy_project(tmp_path_factory, params):
    """A copy of the project with ``params`` applied to the default params, committed in a new
    git repository."""
    project = tmp_path_factory.mktemp("pixelflip") / "project"
    for name in PROJECT_FILES:
        source, target = ROOT / name, project / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # Not the working copy's values: a `dvc exp run -S` there may have set any of them.
    (project / "params.yaml").write_text(default_params_text())
    update_params(project, params)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "tiny pixelflip"], project)
    return project
