"""End to end: real `dvc repro` and `dvc exp run` on a copy of the project in a temporary git repo.

The tests share one copy and run in file order: a full tiny repro first, then the checks that
build on it (nothing reruns, one param reruns only its stage and those downstream, an
experiment, a bad params file). Tiny params keep the whole file to a few `dvc repro` calls.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config",
                 "stages", "src/pixelflip"]
TINY = {
    "data": {"max_images_per_class": 20},
    "train": {"epochs": 1, "batch_size": 32},
    "attention": {"epochs": 1},
    "counterfactuals": {"num_images": 8, "max_iterations": 100, "binary_search_steps": 3},
}
STAGES = ["download", "validate", "train", "attention@se", "attention@cbam", "counterfactuals",
          "evaluate"]


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


def update_params(project, changes):
    path = project / "params.yaml"
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
    """A copy of the project with ``params`` applied, committed in a new git repository."""
    project = tmp_path_factory.mktemp("pixelflip") / "project"
    for name in PROJECT_FILES:
        source, target = ROOT / name, project / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    update_params(project, params)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "tiny pixelflip"], project)
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_project(tmp_path_factory, TINY)
    first = run(["dvc", "repro"], project)
    project.joinpath("first-repro.log").write_text(first.stdout + first.stderr)
    return project


def test_repro_runs_every_stage_and_writes_every_output(project):
    log = (project / "first-repro.log").read_text()
    assert ran_stages(log) == STAGES
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            assert (project / out["path"]).exists(), out["path"]

    source = json.loads((project / "data/raw/source.json").read_text())
    assert source["source"] == "mnist" and source["num_images"] == 5000
    manifest = (project / "data/prepared/manifest.csv").read_text().splitlines()
    assert len(manifest) == 5001 and manifest[0].startswith("path,label,bytes,sha256,format")
    data = json.loads((project / "metrics/data.json").read_text())
    # max_images_per_class picks 20 per digit in validate; the other 4,800 are skipped unread.
    assert data["status_counts"] == {"kept": 200, "converted": 0, "quarantined": 0,
                                     "skipped": 4800}
    assert data["split_counts"] == {"train": 139, "val": 31, "test": 30}
    assert (project / "reports/data/index.html").stat().st_size > 1000

    evaluation = json.loads((project / "metrics/evaluation.json").read_text())
    assert sorted(evaluation) == ["base", "cbam", "se"]
    for model in evaluation.values():
        assert 0.0 <= model["test_accuracy"] <= 1.0
        assert model["counterfactuals"]["num_images"] == 8
        assert 0.0 <= model["counterfactuals"]["validity"] <= 1.0
    for figure in ("base_grid.png", "base_example.png", "se_grid.png", "cbam_example.png"):
        assert (project / "plots/counterfactuals" / figure).stat().st_size > 5000
    history = (project / "plots/train/history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 2


def test_dvc_metrics_and_plots_show(project):
    metrics = run(["dvc", "metrics", "show", "--json"], project).stdout
    shown = json.dumps(json.loads(metrics))
    assert "test_accuracy" in shown and "validity" in shown
    run(["dvc", "plots", "show", "-o", "plots-html"], project)
    page = (project / "plots-html" / "index.html").read_text()
    assert "Training accuracy" in page and "Counterfactual validity per model" in page


def test_mlflow_holds_one_parent_with_a_child_per_stage_and_the_models(project):
    client, experiment, runs = mlflow_runs(project)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(run.info.run_name for run in children) == sorted(STAGES)
    assert all(run.info.status == "FINISHED" for run in children)
    commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    source = json.loads((project / "data/raw/source.json").read_text())
    for tagged in (parent, *children):
        assert tagged.data.tags["mlflow.source.git.commit"] == commit
        assert tagged.data.tags["pixelflip.data_sha256"] == source["sha256"]
    train = next(run for run in children if run.info.run_name == "train")
    assert train.data.params["train.epochs"] == "1"
    assert train.data.params["device.type"] in ("CPU", "GPU")
    assert "test.accuracy" in train.data.metrics
    import mlflow

    models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id],
                                         output_format="list")
    assert {model.source_run_id for model in models} >= {
        run.info.run_id for run in children if run.info.run_name in ("train", "attention@se")}
    logged_base = next(model for model in models if model.source_run_id == train.info.run_id)
    loaded = mlflow.tensorflow.load_model(f"models:/{logged_base.model_id}")
    assert loaded.output_shape[-1] == 10


def test_second_repro_reruns_nothing(project):
    result = run(["dvc", "repro"], project)
    assert ran_stages(result.stdout) == []
    assert "up to date" in run(["dvc", "status"], project).stdout


def test_a_changed_param_reruns_only_that_stage_and_downstream(project):
    update_params(project, {"counterfactuals": {"num_images": 6}})
    result = run(["dvc", "repro"], project)
    assert ran_stages(result.stdout) == ["counterfactuals", "evaluate"]
    evaluation = json.loads((project / "metrics/evaluation.json").read_text())
    assert evaluation["base"]["counterfactuals"]["num_images"] == 6


def test_experiment_is_listed_by_dvc_and_is_its_own_mlflow_parent(project):
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "after repro"], project)
    run(["dvc", "exp", "run", "-n", "fewer-steps", "-S", "counterfactuals.max_iterations=40"],
        project)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    experiments = json.dumps(shown)
    assert "fewer-steps" in experiments and "evaluation.json" in experiments
    _, _, runs = mlflow_runs(project)
    named = [run for run in runs if run.data.tags.get("dvc.exp_name") == "fewer-steps"]
    parents = [run for run in named if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    assert sorted(run.info.run_name for run in named if run not in parents) == [
        "counterfactuals", "evaluate"]


def test_bad_params_stop_with_one_clear_line(project):
    params = project / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("epochs: 1\n", "epoch: 1\n", 1))
        result = run(["dvc", "repro"], project, check=False)
    finally:
        params.write_text(original)
    assert result.returncode != 0
    assert "error: params.yaml: unknown key 'train.epoch' (did you mean 'train.epochs'?)" \
        in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
