"""Bad input loses nothing, probed with real `dvc repro`, `dvc exp run` and `dvc queue`.

One tiny copy of the project is reproduced up to `train` (check, download, validate, train);
then every bad params file of the table is handed to `dvc repro`: each must stop at the check
stage with one line naming the key, leave every output byte for byte, and leave `dvc status`
clean once the file is restored. The other probes: `dvc exp run -S` with a bad value, an
unreachable tracking server, stage scripts started from the wrong folder, and queue workers
creating a fresh MLflow store at the same time. docs/reliability.md lists what is guaranteed
and which test checks it.
"""

import hashlib
import re
import shutil
import time

import pytest
from support.project import copy_project, mlflow_runs, ran_stages, run

pytestmark = pytest.mark.slow

TINY = {
    "data": {"max_images_per_class": 12},
    "train": {"epochs": 1, "batch_size": 16},
}
# What `dvc repro train` writes and a refused params file must leave alone.
PROTECTED = ["models/base.keras", "metrics/train.json", "plots/train", "data/prepared",
             "data/raw", "metrics/data.json"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_project(tmp_path_factory, TINY)
    run(["dvc", "repro", "train"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "trained"], project)
    return project


def digests(project):
    """sha256 of every file under the protected outputs, by path."""
    found = {}
    for name in PROTECTED:
        path = project / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                found[str(file.relative_to(project))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found


def replace_once(text, old, new):
    if old not in text:
        raise ValueError(f"{old!r} is not in the tiny params.yaml")
    return text.replace(old, new, 1)


def without_section(text, section, following):
    start, end = text.index(f"\n{section}:"), text.index(f"\n{following}:")
    return text[:start] + text[end:]


# (probe, how the file is changed, what the one error line must say)
BAD_PARAMS = [
    ("negative epochs", lambda t: replace_once(t, "  epochs: 1\n", "  epochs: -3\n"),
     "train.epochs = -3 is out of range"),
    ("nan zip-bomb ratio", lambda t: replace_once(t, "max_compression_ratio: 100.0",
                                                  "max_compression_ratio: .nan"),
     "validate.max_compression_ratio = nan is not a finite number"),
    ("infinite unpacked size", lambda t: replace_once(t, "max_uncompressed_gb: 20.0",
                                                      "max_uncompressed_gb: .inf"),
     "validate.max_uncompressed_gb = inf is not a finite number"),
    ("nan class ratio", lambda t: replace_once(t, "max_class_ratio: 10.0", "max_class_ratio: .nan"),
     "validate.max_class_ratio = nan is not a finite number"),
    ("patience beyond int32", lambda t: replace_once(t, "early_stopping_patience: 3",
                                                     f"early_stopping_patience: {10**30}"),
     f"train.early_stopping_patience = {10**30} is out of range"),
    ("duplicate key", lambda t: replace_once(t, "  epochs: 1\n", "  epochs: 1\n  epochs: 5\n"),
     "key 'epochs' appears twice"),
    ("duplicate section", lambda t: t + "train:\n  epochs: 2\n", "key 'train' appears twice"),
    ("empty file", lambda t: "", "params.yaml is empty"),
    ("missing section", lambda t: without_section(t, "autoencoders", "evaluate"),
     "section 'autoencoders' is missing"),
    ("unknown target class", lambda t: replace_once(
        t, "  target_class: null", "  target_class: cat").replace("target: other", "target: class"),
     "counterfactuals.target_class = 'cat' is not a class of this data"),
    ("empty experiment name", lambda t: replace_once(t, "experiment: pixelflip", "experiment: ''"),
     "tracking.experiment is empty"),
    ("tracking uri with no store", lambda t: re.sub(r"  uri: null", "  uri: 'nonsense://x'", t),
     "tracking.uri = 'nonsense://x' has no MLflow store scheme"),
]


# Files DVC itself refuses before it runs any stage, and what it says.
REFUSED_BY_DVC = {"duplicate key": "ERROR: unable to read: 'params.yaml'",
                  "duplicate section": "ERROR: unable to read: 'params.yaml'",
                  "empty file": "Could not find 'attention.modules'"}


@pytest.mark.parametrize("probe, change, expected", BAD_PARAMS, ids=[row[0] for row in BAD_PARAMS])
def test_a_bad_params_file_stops_at_the_check_and_costs_no_output(project, probe, change,
                                                                 expected):
    params = project / "params.yaml"
    original = params.read_text()
    before = digests(project)
    try:
        params.write_text(change(original))
        result = run(["dvc", "repro"], project, check=False)
        # The check the stage scripts make themselves, for runs outside DVC.
        direct = run(["python", "stages/check.py"], project, check=False)
    finally:
        params.write_text(original)
    assert result.returncode != 0 and direct.returncode == 2
    assert direct.stderr.count("\n") == 1 and expected in direct.stderr, direct.stderr
    assert direct.stderr.startswith("[check] error: params.yaml")
    if probe in REFUSED_BY_DVC:
        assert REFUSED_BY_DVC[probe] in result.stderr
        assert ran_stages(result.stdout) == []
    else:
        errors = [line for line in result.stderr.splitlines() if line.startswith("[check] error")]
        assert len(errors) == 1 and expected in errors[0], result.stderr
        assert ran_stages(result.stdout) == ["check"]
    assert "Traceback" not in result.stdout + result.stderr
    assert digests(project) == before
    assert "up to date" in run(["dvc", "status", "train"], project).stdout


def test_an_exponent_float_is_the_same_value_dvc_already_has(project):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; DVC reads it as 0.001, and so do we now.
    params = project / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(replace_once(original, "  learning_rate: 0.001\n",
                                       "  learning_rate: 1e-3\n"))
        checked = run(["python", "stages/check.py"], project)
        status = run(["dvc", "status", "train"], project).stdout
    finally:
        params.write_text(original)
    assert "params.yaml is valid" in checked.stdout
    assert "up to date" in status


def test_a_bad_value_through_dvc_exp_run_costs_no_output(project):
    before = digests(project)
    result = run(["dvc", "exp", "run", "-S", "train.epochs=-3"], project, check=False)
    assert result.returncode != 0
    assert "[check] error: params.yaml: train.epochs = -3 is out of range" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert digests(project) == before
    run(["git", "checkout", "--", "params.yaml"], project)
    assert "up to date" in run(["dvc", "status", "train"], project).stdout


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9", "http://no-such-host.invalid:5000"])
def test_an_unreachable_tracking_server_stops_a_stage_in_one_line(project, uri):
    result = run(["python", "stages/download.py"], project, check=False,
                 extra_env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 2
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("[download]")]
    assert uri in error and "tracking.enabled: false" in error
    assert "Traceback" not in result.stderr


def test_stage_scripts_run_only_from_the_project_root_and_answer_help(project):
    elsewhere = run(["python", "train.py"], project / "stages", check=False)
    assert elsewhere.returncode == 2
    assert f"run stage scripts from the project root, where dvc.yaml is: cd {project}" \
        in elsewhere.stderr
    assert not (project / "stages" / "data").exists()
    helped = run(["python", "stages/train.py", "--help"], project)
    assert "usage: python stages/train.py" in helped.stdout
    assert "fit the base classifier" in helped.stdout
    assert "seed, train" in helped.stdout
    # A foreach stage answers before it takes "--help" for its item.
    looped = run(["python", "stages/attention.py", "--help"], project)
    assert "usage: python stages/attention.py <module>" in looped.stdout
    assert "up to date" in run(["dvc", "status", "train"], project).stdout


def queue_experiments(clone, workers, count):
    """Queue ``count`` experiments of the first stages and run them with ``workers`` workers."""
    for seed in range(count):
        run(["dvc", "exp", "run", "--queue", "-S", f"seed={seed}", "validate"], clone)
    run(["dvc", "queue", "start", "-j", str(workers)], clone)
    for _ in range(900):  # polls a second apart: a queue that hangs fails instead of stalling CI
        status = run(["dvc", "queue", "status"], clone).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(1)
    raise AssertionError(f"the queue did not finish:\n{status}")


@pytest.mark.parametrize("workers", [2, 4])
def test_queue_workers_on_a_fresh_clone_share_one_store(project, tmp_path, workers):
    # A fresh clone has no mlflow.db: every worker's first stage races to create it.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    shutil.copytree(project / ".dvc" / "cache", clone / ".dvc" / "cache")
    assert not (clone / "mlflow.db").exists()
    status = queue_experiments(clone, workers, count=workers)
    assert status.count("Success") == workers, status
    assert "Failed" not in status, status
    _, _, runs = mlflow_runs(clone)
    children = [found for found in runs if "mlflow.parentRunId" in found.data.tags]
    # The seed changes validate only; download's inputs are those of the committed lock.
    assert [found.info.run_name for found in children] == ["validate"] * workers
    assert {found.info.status for found in runs} == {"FINISHED"}
    seeds = sorted(int(found.data.params["seed"]) for found in children
                   if found.info.run_name == "validate")
    assert seeds == list(range(workers))
