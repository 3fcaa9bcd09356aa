"""End to end: real `dvc repro` and `dvc exp run` on a copy of the project in a temporary git repo.

The tests share one copy and run in file order: a full tiny repro first, then the checks that
build on it (nothing reruns, one param reruns only its stage and those downstream, an
experiment, a bad params file). Tiny params keep the whole file to a few `dvc repro` calls.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.project import copy_project, mlflow_runs, ran_stages, run, update_params

from pixelflip.config.declared import declared_values
from pixelflip.config.params import load_params
from pixelflip.stage.declarations import read_declarations

pytestmark = pytest.mark.slow

TINY = {
    "data": {"max_images_per_class": 20},
    "train": {"epochs": 4, "batch_size": 16, "early_stopping_patience": 10},
    "attention": {"epochs": 2, "frozen_epochs": 1},
    "oracle": {"epochs": 1},
    "attributions": {"smoothgrad": {"num_samples": 4}, "lime": {"num_samples": 60}},
    "select": {"num_images": 8, "misclassified": 4},
    "counterfactuals": {"batch_size": 32, "elastic_net": {"binary_search_steps": 3},
                        "prototype_guided": {"autoencoder_epochs": 1,
                                             "autoencoder_max_images": 100},
                        "growing_spheres": {"num_samples": 32, "max_layers": 20},
                        "regions": {"num_references": 10}},
    "autoencoders": {"epochs": 1, "max_images_per_class": 10},
    "evaluate": {"deletion_steps": 5},
}
COUNTERFACTUAL_METHODS = ["elastic_net", "prototype_guided", "growing_spheres", "regions"]
ATTRIBUTION_METHODS = ["grad_cam", "score_cam", "smoothgrad", "lime"]
MODULES = ["se", "cbam", "pam", "gc"]
# The check stage reads params.yaml only: no MLflow run, no TensorFlow.
TRACKED_STAGES = ["download", "validate", "train",
                  *(f"attention@{module}" for module in MODULES), "oracle", "compare", "select",
                  "attributions", "counterfactuals", "attention_maps", "autoencoders", "evaluate"]
STAGES = ["check", *TRACKED_STAGES]


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
    assert sorted(evaluation) == sorted(["base", *MODULES])
    for name, model in evaluation.items():
        assert 0.0 <= model["test_accuracy"] <= 1.0
        sets = json.loads((project / f"data/selected/{name}/sets.json").read_text())
        assert len(sets["sampled"]) == 8 and len(sets["misclassified"]) <= 4
        # The misclassified set holds exactly the model's mistakes (up to 4 of them).
        wrong = round((1 - model["test_accuracy"]) * 30)
        assert len(sets["misclassified"]) == min(4, wrong)
        for image_set, indices in sets.items():
            if not indices:
                continue
            for method in COUNTERFACTUAL_METHODS:
                summary = model["counterfactuals"][image_set][method]
                assert summary["num_images"] == len(indices)
                assert 0.0 <= summary["validity"] <= summary["success_rate"] <= 1.0
                # The oracle re-predicted every valid counterfactual.
                assert summary["num_valid"] == 0 or 0.0 <= summary["oracle_agreement"] <= 1.0
                assert 0.0 <= summary["oracle_original_agreement"] <= 1.0
                figure = project / f"plots/explanations/{name}_{image_set}_{method}.png"
                assert figure.stat().st_size > 5000
            # Every method's counterfactuals of the same images, side by side.
            assert (project / f"plots/explanations/{name}_{image_set}_methods.png").stat(
                ).st_size > 5000
            for method in ATTRIBUTION_METHODS:
                summary = model["attributions"][image_set][method]
                assert summary["num_images"] == len(indices)
                assert 0.0 <= summary["mean_deletion_auc"] <= 1.0
    assert (project / "plots/explanations/base_example.png").stat().st_size > 5000
    assert (project / "plots/attributions/pam.png").stat().st_size > 5000
    table = (project / "plots/evaluate/counterfactuals.csv").read_text().splitlines()
    assert table[0].startswith("model,set,method,") and "median_im1" in table[0]
    autoencoders = sorted(path.name for path in (project / "models/autoencoders").iterdir())
    # One per digit and the shared one of IM2.
    assert len(autoencoders) == 11 and "shared.keras" in autoencoders
    history = (project / "plots/train/history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 5
    # The attention stages ran a frozen epoch then an unfrozen one, numbered on.
    attention_history = (project / "plots/attention/pam/history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in attention_history[1:]] == ["1", "2"]
    assert not (project / ".backup").exists() or not any((project / ".backup").iterdir())


def test_mlflow_ui_opens_on_the_runs_and_shows_their_images(project, tmp_path):
    # The real UI as a user opens it (`make ui` runs pixelflip.tracking.ui), in a browser.
    from support import mlflow_ui
    from support.browser import headless_chromium

    from pixelflip.tracking.tables import table_artifact_file
    from pixelflip.tracking.ui import runs_table_url

    client, experiment, runs = mlflow_runs(project)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = next(run for run in runs if "mlflow.parentRunId" not in run.data.tags)
    stage_runs = {run.info.run_name: run.info.run_id for run in runs if run is not parent}
    # The parent row compares pipeline executions: it holds every key of params.yaml.
    assert parent.data.params["train.epochs"] == "4"
    assert parent.data.params["counterfactuals.methods"] == str(COUNTERFACTUAL_METHODS)
    experiment_id = experiment.experiment_id
    with mlflow_ui.MlflowUi(project, tmp_path / "ui") as ui, headless_chromium() as driver:
        assert ui.printed_url() == runs_table_url(ui.uri, experiment_id)
        mlflow_ui.open_page(driver, ui.printed_url())
        mlflow_ui.expand_parent_runs(driver)
        listed = mlflow_ui.wait_for_runs(driver, {parent.info.run_name, *TRACKED_STAGES})
        assert listed == {parent.info.run_name, *TRACKED_STAGES}
        # Per-image counterfactuals: a table with the original, counterfactual and change.
        mlflow_ui.open_run_tab(driver, ui.uri, experiment_id, stage_runs["counterfactuals"],
                               "artifacts/" + table_artifact_file("base.sampled.elastic_net"))
        assert len(mlflow_ui.wait_for_images(driver, "table_images")) >= 3
        # The evaluate stage's figures in its run's image grid.
        mlflow_ui.open_run_tab(driver, ui.uri, experiment_id, stage_runs["evaluate"],
                               "model-metrics")
        assert mlflow_ui.wait_for_images(driver, "images%2Fexplanations~base_")


def test_comparison_table_lists_every_model_with_its_figures(project):
    comparison = json.loads((project / "metrics/comparison.json").read_text())
    assert list(comparison["models"]) == ["base", *MODULES]
    assert comparison["best_model"] == max(
        comparison["models"], key=lambda name: comparison["models"][name]["val_accuracy"])
    # The seconds of each model, apart from what a rerun reproduces.
    timings = json.loads((project / "timings/comparison.json").read_text())["models"]
    assert list(timings) == ["base", *MODULES]
    for name, row in comparison["models"].items():
        assert row["module"] == ("none" if name == "base" else name)
        assert row["backbone"] == "simple_cnn"
        assert row["parameters"] > 1000 and timings[name]["inference_ms_per_image"] > 0
        assert 0.0 <= row["test_accuracy"] <= 1.0 and timings[name]["training_seconds"] > 0
        assert timings[name] == json.loads((project / (
            "timings/train.json" if name == "base" else f"timings/attention/{name}.json")
        ).read_text())
        # 95% interval of the accuracy on the test split's 30 digits (tiny params).
        assert row["test_accuracy_low"] <= row["test_accuracy"] <= row["test_accuracy_high"]
        assert row["test_accuracy_high"] - row["test_accuracy_low"] > 0.05
    table = (project / "plots/comparison/models.csv").read_text().splitlines()
    assert table[0].startswith("model,module,backbone,test_accuracy,test_accuracy_low,"
                               "test_accuracy_high,test_loss") and len(table) == 6
    seconds = (project / "timings/comparison.csv").read_text().splitlines()
    assert seconds[0] == "model,training_seconds,inference_ms_per_image" and len(seconds) == 6
    assert (project / "plots/comparison/models.png").stat().st_size > 10000


def test_attention_maps_are_exported_for_the_explained_images(project):
    import numpy as np

    for module in MODULES:
        with np.load(project / f"data/attention_maps/{module}.npz") as maps:
            assert sorted(maps.files) == [f"counterfactual/attention_{module}",
                                          f"original/attention_{module}"]
            original = maps[f"original/attention_{module}"]
            assert original.shape == (8, 28, 28)
            assert 0.0 <= original.min() and original.max() <= 1.0
        assert (project / f"plots/attention_maps/{module}.png").stat().st_size > 5000
    assert sorted(path.name for path in (project / "data/attention_maps").iterdir()) == sorted(
        f"{module}.npz" for module in MODULES)


HEADLINE_KEYS = {
    **{f"summary/{model}.json": {"accuracy"} for model in ["base", *MODULES]},
    **{f"summary/{method}.json": {"validity", "median_l0", "oracle"}
       for method in COUNTERFACTUAL_METHODS},
    "summary/data.json": {"kept", "quarantined"},
    **{f"timings/summary/{method}.json": {"s_per_image"} for method in COUNTERFACTUAL_METHODS},
}


def test_dvc_metrics_and_plots_show(project):
    # The headline only, one short row per file: a table that fits a terminal.
    table = run(["dvc", "metrics", "show"], project).stdout
    lines = table.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 120, table
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(HEADLINE_KEYS)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    files = {path: values["data"] for path, values in shown[""]["data"].items()}
    assert {path: set(values) for path, values in files.items()} == HEADLINE_KEYS
    assert files["summary/data.json"] == {"kept": 200, "quarantined": 0}
    evaluation = json.loads((project / "metrics/evaluation.json").read_text())
    assert files["summary/base.json"]["accuracy"] == pytest.approx(
        evaluation["base"]["test_accuracy"], rel=1e-3)
    for values in files.values():
        # Four significant digits at most, so the columns stay narrow.
        assert all(value == float(f"{value:.4g}") for value in values.values()), values
    run(["dvc", "plots", "show", "-o", "plots-html"], project)
    page = (project / "plots-html" / "index.html").read_text()
    assert "Training accuracy" in page and "Counterfactual size per image" in page
    assert "inference ms per image" in page


def git_tracked_outputs(project):
    """The files of every output DVC leaves to git (cache: false), by path in the project."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        roots = [Path(out.fs_path) for out in repo.index.outs if not out.use_cache]
    files = [path for root in roots
             for path in ([root] if root.is_file() else sorted(root.rglob("*")))
             if path.is_file()]
    return [path.relative_to(project).as_posix() for path in files]


def keys_of(value):
    if isinstance(value, dict):
        return set(value) | {key for inner in value.values() for key in keys_of(inner)}
    return set()


def test_timings_live_only_under_timings_and_nothing_else_differs_from_run_to_run(project):
    from pixelflip.stage.timings import TIMING_KEYS

    outputs = git_tracked_outputs(project)
    timings = [path for path in outputs if path.startswith("timings/")]
    assert {"timings/train.json", "timings/oracle.json", "timings/comparison.csv",
            "timings/counterfactuals.csv", "timings/attributions.csv",
            *(f"timings/attention/{module}.json" for module in MODULES)} <= set(timings)
    assert json.loads((project / "timings/train.json").read_text()).keys() == {
        "training_seconds", "inference_ms_per_image"}
    for path in sorted(set(outputs) - set(timings)):
        if path.endswith(".json"):
            keys = keys_of(json.loads((project / path).read_text()))
        elif path.endswith(".csv"):
            keys = set(pd.read_csv(project / path, nrows=0).columns)
        else:
            continue
        assert not {key for key in keys if key in TIMING_KEYS or "seconds" in key
                    or key.endswith("_ms") or "_ms_" in key}, path
        # Nothing of the machine it ran on.
        assert str(project) not in (project / path).read_text(), path


def test_mlflow_holds_one_parent_with_a_child_per_stage_and_the_models(project):
    client, experiment, runs = mlflow_runs(project)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(run.info.run_name for run in children) == sorted(TRACKED_STAGES)
    assert all(run.info.status == "FINISHED" for run in children)
    # Each stage's run logs exactly the params its dvc.yaml entry declares, with their values.
    declarations = read_declarations(project)
    params = load_params(project / "params.yaml")
    for child in children:
        expected = declared_values(params, declarations[child.info.run_name].params)
        logged = {key: value for key, value in child.data.params.items()
                  if not key.startswith("device.") and key != "precision"}
        assert logged == {key: str(value) for key, value in expected.items()}, \
            child.info.run_name
    # The parent compares pipeline executions: every param, and the headline `dvc metrics show`
    # prints (summary/ and timings/summary/), under the same flat names.
    assert parent.data.params["train.epochs"] == "4"
    assert parent.data.params["counterfactuals.methods"] == str(COUNTERFACTUAL_METHODS)
    for method in COUNTERFACTUAL_METHODS:
        headline = json.loads((project / f"summary/{method}.json").read_text())
        assert parent.data.metrics[f"{method}.validity"] == pytest.approx(headline["validity"])
        assert f"{method}.s_per_image" in parent.data.metrics
    base = json.loads((project / "summary/base.json").read_text())
    assert parent.data.metrics["accuracy.base"] == pytest.approx(base["accuracy"])
    commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    source = json.loads((project / "data/raw/source.json").read_text())
    for tagged in (parent, *children):
        assert tagged.data.tags["mlflow.source.git.commit"] == commit
        assert tagged.data.tags["pixelflip.data_sha256"] == source["sha256"]
    train = next(run for run in children if run.info.run_name == "train")
    assert train.data.params["train.epochs"] == "4"
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
    # Per-epoch points, the machine's load while training, the strategy it trained under.
    assert [point.step for point in client.get_metric_history(train.info.run_id, "val_loss")] \
        == [1, 2, 3, 4]
    assert "system/cpu_utilization_percentage" in train.data.metrics
    assert train.data.params["device.strategy"] == "default"
    # Every trained model is a version of one registered model; @best has the best val accuracy.
    versions = client.search_model_versions("name = 'pixelflip-classifier'")
    assert sorted(version.tags["module"] for version in versions) == sorted(["base", *MODULES])
    # The oracle judges the classifiers: registered apart, so it can never become their @best.
    oracles = client.search_model_versions("name = 'pixelflip-classifier-oracle'")
    assert [version.tags["module"] for version in oracles] == ["oracle"]
    oracle_metrics = json.loads((project / "metrics/oracle.json").read_text())
    assert oracle_metrics["backbone"] == "separable_resnet" and oracle_metrics["epochs_run"] == 1
    best = client.get_model_version_by_alias("pixelflip-classifier", "best")
    comparison = json.loads((project / "metrics/comparison.json").read_text())
    assert float(best.tags["val_accuracy"]) == pytest.approx(
        max(row["val_accuracy"] for row in comparison["models"].values()))


def test_second_repro_reruns_nothing(project):
    result = run(["dvc", "repro"], project)
    assert ran_stages(result.stdout) == []
    assert "up to date" in run(["dvc", "status"], project).stdout


def output_digests(project):
    return {path: hashlib.sha256((project / path).read_bytes()).hexdigest()
            for path in git_tracked_outputs(project)}


def test_a_forced_rerun_on_the_same_data_changes_only_the_timings(project):
    # The oracle trains again, from the same seed, and is timed anew; compare and evaluate
    # measure nothing but read the seconds the stages before them wrote.
    before, lock_before = output_digests(project), (project / "dvc.lock").read_text()
    result = run(["dvc", "repro", "--force", "--single-item", "oracle", "compare", "evaluate"],
                 project)
    assert sorted(ran_stages(result.stdout)) == ["compare", "evaluate", "oracle"]
    after = output_digests(project)
    changed = sorted(path for path in before.keys() | after.keys()
                     if before.get(path) != after.get(path))
    assert "timings/oracle.json" in changed
    assert all(path.startswith("timings/") for path in changed), changed

    def reproducible(lock_text):
        # A .keras file records the date Keras saved it; its weights are what the metrics check.
        def kept(entries):
            return [entry for entry in entries if not entry["path"].startswith("timings/")
                    and not entry["path"].endswith(".keras")]

        return {name: {**stage, "deps": kept(stage.get("deps", [])),
                       "outs": kept(stage.get("outs", []))}
                for name, stage in yaml.safe_load(lock_text)["stages"].items()}

    assert reproducible((project / "dvc.lock").read_text()) == reproducible(lock_before)


def test_a_changed_param_reruns_only_that_stage_and_downstream(project):
    update_params(project, {"select": {"num_images": 6}})
    result = run(["dvc", "repro"], project)
    # Both explanation stages explain the chosen images; the autoencoders do not depend on them.
    # The check stage reruns on any edit of params.yaml; its unchanged mark reruns nothing.
    assert sorted(ran_stages(result.stdout)) == ["attention_maps", "attributions", "check",
                                                 "counterfactuals", "evaluate", "select"]
    evaluation = json.loads((project / "metrics/evaluation.json").read_text())
    assert evaluation["base"]["counterfactuals"]["sampled"]["growing_spheres"]["num_images"] == 6
    assert evaluation["base"]["attributions"]["sampled"]["lime"]["num_images"] == 6


def test_one_modules_own_params_change_only_its_stage(project):
    params = project / "params.yaml"
    original = params.read_text()
    try:
        update_params(project, {"attention": {"pam": {"reduction_ratio": 4}}})
        status = json.loads(run(["dvc", "status", "--json"], project).stdout)
    finally:
        params.write_text(original)
    assert sorted(status) == ["attention@pam", "check"]
    assert "attention.pam" in json.dumps(status["attention@pam"])


def test_experiment_is_listed_by_dvc_and_is_its_own_mlflow_parent(project, tmp_path):
    from support.shipped_files import committed_text

    from pixelflip.config.profiles import parse_overrides

    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "after repro"], project)
    experiment = "counterfactuals.elastic_net.num_counterfactuals=2"
    run(["dvc", "exp", "run", "-n", "two-each", "-S", experiment], project)
    # DVC rewrote the whole params.yaml in its own layout (nulls left blank, lists one item a
    # line); it still loads, to the committed values with the one the experiment set.
    committed = tmp_path / "params.yaml"
    committed.write_text(committed_text(project, "params.yaml"))
    rewritten = (project / "params.yaml").read_text()
    assert ": null\n" in committed.read_text() and ": null\n" not in rewritten
    assert load_params(project / "params.yaml") == load_params(
        committed, overrides=parse_overrides([experiment]))
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    experiments = json.dumps(shown)
    assert "two-each" in experiments and "evaluation.json" in experiments
    # Side by side in 120 columns: the experiment's param and every headline number.
    side_by_side = run([sys.executable, "-m", "pixelflip.reports.experiments"], project).stdout
    lines = side_by_side.splitlines()
    assert "two-each" in lines[0] and max(map(len, lines)) <= 120
    assert any(line.startswith(f"param {experiment.split('=')[0]} ") for line in lines)
    assert any(line.startswith("elastic_net.validity ") for line in lines)
    assert "…" not in side_by_side
    # Two elastic-net counterfactuals per image, towards two classes, scored apart.
    frame = pd.read_csv(project / "plots/evaluate/counterfactuals_per_image.csv")
    chosen = frame[(frame["method"] == "elastic_net") & (frame["set"] == "sampled")
                   & (frame["model"] == "base")]
    # An earlier test changed select.num_images: the project's params say how many.
    assert len(chosen) == 2 * load_params(project / "params.yaml").select.num_images
    assert (chosen.groupby("source")["target"].nunique() == 2).all()
    assert "pairwise_distance" in chosen
    _, _, runs = mlflow_runs(project)
    named = [run for run in runs if run.data.tags.get("dvc.exp_name") == "two-each"]
    parents = [run for run in named if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    assert sorted(run.info.run_name for run in named if run not in parents) == [
        "attention_maps", "counterfactuals", "evaluate"]


def test_bad_params_stop_with_one_clear_line(project):
    params = project / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("epochs: 4\n", "epoch: 4\n", 1))
        result = run(["dvc", "repro"], project, check=False)
    finally:
        params.write_text(original)
    assert result.returncode != 0
    assert "[check] error: params.yaml: unknown key 'train.epoch' (did you mean 'train.epochs'?)" \
        in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # Refused by the check stage, before DVC removed any output.
    assert ran_stages(result.stdout) == ["check"]
    assert "up to date" in run(["dvc", "status"], project).stdout


def test_a_killed_train_stage_resumes_and_finishes_with_the_same_result(project):
    # Last in the file: it retrains the base model, which later checks must not see.
    import psutil

    from pixelflip.training.resume import backed_up_epochs

    # The outputs of the first, uninterrupted repro with these same params.
    uninterrupted = json.loads((project / "metrics/train.json").read_text())
    uninterrupted_history = (project / "plots/train/history.csv").read_text()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(project / "src"), "DVC_NO_ANALYTICS": "1"}
    repro = subprocess.Popen(["dvc", "repro", "--single-item", "--force", "train"], cwd=project,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    backup = project / ".backup/train/all"
    while repro.poll() is None and (backed_up_epochs(backup) or 0) < 2:
        time.sleep(0.05)
    # DVC runs the command through $SHELL; dash (the usual /bin/sh) forks the Python process
    # rather than exec'ing it, so both the shell and Python match: kill the Python one first.
    stage = [child for child in psutil.Process(repro.pid).children(recursive=True)
             if "stages/train.py" in " ".join(child.cmdline())]
    assert stage, "the train stage ended before two epochs were backed up"
    for process in reversed(stage):
        process.kill()  # SIGKILL, as the out-of-memory killer would
    killed_log = repro.communicate(timeout=600)[0]
    assert repro.returncode != 0, killed_log
    assert not (project / "models/base.keras").exists()

    resumed = run(["dvc", "repro", "--single-item", "train"], project)
    assert "resuming from epoch" in resumed.stdout + resumed.stderr
    after = json.loads((project / "metrics/train.json").read_text())
    assert after["test"] == uninterrupted["test"]
    assert after["validation"] == uninterrupted["validation"]
    assert (project / "plots/train/history.csv").read_text() == uninterrupted_history
    assert not (project / ".backup/train").exists()
