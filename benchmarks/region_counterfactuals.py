"""Pixel against region counterfactuals on the same photos, in one run: validity, area changed,
regions, oracle agreement and seconds per image.

Every method explains the same seeded sample of test photos of a pipeline folder towards the
other class, with that pipeline's trained base model, and the pipeline's oracle (another network
and seed, the ``oracle`` stage) re-predicts every counterfactual. The methods and their settings
are the pipeline's params (``counterfactuals.elastic_net``, ``counterfactuals.regions``), varied
one option at a time:

- ``elastic_net``: the pixel search as the pipeline runs it;
- ``elastic_net smooth``: the same with ``perturbation_resolution`` and ``tv_weight`` (blobs);
- ``regions distractor`` / ``blur`` / ``inpaint``: the region method with each replacement;
- ``regions distractor, black-box``: the model behind an object that can only ``predict``, so no
  gradient ranks the regions and every one is scored.

    python benchmarks/region_counterfactuals.py                    # pipelines/cats-vs-dogs
    python benchmarks/region_counterfactuals.py --pipeline . --images 64   # the digits

Needs the pipeline's ``data/prepared``, ``models/base.keras`` and ``models/oracle.keras`` (run
``dvc repro`` there, or ``dvc pull``). Writes ``benchmarks/results/region_counterfactuals*.md``
and ``.json`` beside printing the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from pixelflip.config.params import load_params
from pixelflip.counterfactuals import make_counterfactual
from pixelflip.data.loaders import load_split
from pixelflip.evaluation.counterfactual_metrics import counterfactual_metrics
from pixelflip.evaluation.oracle_agreement import oracle_agreement
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.model_access import PredictOnly
from pixelflip.explanation.targets import resolve_targets
from pixelflip.models.loading import load_classifier
from pixelflip.stage import layout

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The smooth search's options, as docs/explanations recommends for 128 px photos.
SMOOTH = {"perturbation_resolution": 16, "tv_weight": 0.5}


def configurations(params) -> list[tuple[str, str, dict, bool]]:
    """(label, method, options, black box) of every method compared."""
    options = params.counterfactuals
    elastic_net, regions = options.options("elastic_net"), options.options("regions")
    return [
        ("elastic_net", "elastic_net", elastic_net, False),
        ("elastic_net smooth", "elastic_net", {**elastic_net, **SMOOTH}, False),
        ("regions distractor", "regions", {**regions, "replacement": "distractor"}, False),
        ("regions blur", "regions", {**regions, "replacement": "blur"}, False),
        ("regions inpaint", "regions", {**regions, "replacement": "inpaint"}, False),
        ("regions distractor, black-box", "regions",
         {**regions, "replacement": "distractor", "candidates": None}, True),
    ]


def measure(pipeline: Path, count: int, seed: int, only: list[str] | None = None) -> dict:
    """Every configuration on the same images; run from the pipeline folder, whose params
    read their paths from there."""
    os.chdir(pipeline)
    params = load_params()
    test_images, _ = load_split(layout.PREPARED_DIR, "test")
    train_images, train_labels = load_split(layout.PREPARED_DIR, "train")
    picked = np.sort(np.random.default_rng(seed).choice(len(test_images), count, replace=False))
    images = np.asarray(test_images[picked], dtype=np.float32) / 255.0
    model = load_classifier(layout.BASE_MODEL)
    oracle = load_classifier(layout.ORACLE_MODEL)
    targets = resolve_targets("other", predict_probabilities(model, images))
    batch_size = params.counterfactuals.batch_size
    rows = []
    for label, name, options, black_box in configurations(params):
        if only and label not in only:
            continue
        method = make_counterfactual(name, **options, batch_size=batch_size,
                                     random_state=params.seed).fit(train_images, train_labels)
        method.explain(model, images[:2], targets[:2])  # compile and trace outside the timing
        started = time.perf_counter()
        result = method.explain(PredictOnly(model) if black_box else model, images, targets)
        seconds = (time.perf_counter() - started) / count
        frame = counterfactual_metrics(result, change_tolerance=params.evaluate.change_tolerance)
        agrees = oracle_agreement(result, oracle, batch_size=batch_size)["oracle_agrees"]
        valid = frame[frame["success"]]
        rows.append({
            "method": label, "validity": float(result.success.mean()),
            "median_area": float(valid["area"].median()) if len(valid) else None,
            "median_regions": float(valid["regions"].median()) if len(valid) else None,
            "median_l0": float(valid["l0"].median()) if len(valid) else None,
            "oracle_agreement": float(np.nanmean(agrees)) if len(valid) else None,
            "seconds_per_image": seconds})
        print(f"[benchmark] {label}: validity {rows[-1]['validity']:.3f}, "
              f"{seconds:.3f} s per image", flush=True)
    base_seconds = rows[0]["seconds_per_image"]
    for row in rows:
        row["time_vs_elastic_net"] = row["seconds_per_image"] / base_seconds
    oracle_accuracy = json.loads(layout.ORACLE_METRICS.read_text())["test"]
    return {"pipeline": str(pipeline), "images": count, "seed": seed,
            "image_shape": list(images.shape[1:]),
            "oracle_test_accuracy": oracle_accuracy["accuracy"], "rows": rows}


def markdown(measured: dict, command: str) -> str:
    lines = [f"`{command}`: {measured['images']} test images "
             f"{'x'.join(map(str, measured['image_shape']))} of `{measured['pipeline']}` towards "
             f"the other class, seed {measured['seed']}, one run on the same images; oracle test "
             f"accuracy {measured['oracle_test_accuracy']:.3f}.", "",
             "| method | validity | median area | median regions | median L0 | oracle agreement "
             "| s / image | time / elastic-net |", "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(value, pattern):
        return "–" if value is None else pattern.format(value)

    for row in measured["rows"]:
        lines.append(
            f"| {row['method']} | {row['validity']:.3f} | {cell(row['median_area'], '{:.1%}')} | "
            f"{cell(row['median_regions'], '{:g}')} | {cell(row['median_l0'], '{:g}')} | "
            f"{cell(row['oracle_agreement'], '{:.3f}')} | {row['seconds_per_image']:.3f} | "
            f"{row['time_vs_elastic_net']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=Path("pipelines/cats-vs-dogs"),
                        help="folder with params.yaml and the pipeline's outputs")
    parser.add_argument("--images", type=int, default=64, help="test images explained")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", help="only these labels (default: all)")
    parser.add_argument("--name", default="region_counterfactuals",
                        help="results file stem under benchmarks/results")
    arguments = parser.parse_args()
    measured = measure(arguments.pipeline, arguments.images, arguments.seed, arguments.methods)
    command = (f"python benchmarks/region_counterfactuals.py --pipeline {arguments.pipeline} "
               f"--images {arguments.images} --seed {arguments.seed} --name {arguments.name}")
    table = markdown(measured, command)
    print("\n" + table)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{arguments.name}.md").write_text(table)
    (RESULTS_DIR / f"{arguments.name}.json").write_text(json.dumps(measured, indent=2) + "\n")


if __name__ == "__main__":
    main()
