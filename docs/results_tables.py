"""Write the result tables of README.md and docs/ from the files the pipeline wrote.

    python docs/results_tables.py           # rewrite docs/results.md and every marked table
    python docs/results_tables.py --check   # exit 1 if a page differs from the files

``docs/results.md`` is generated whole. In README.md and the other pages, each table sits between
``<!-- results:<name> -->`` and ``<!-- /results -->``: ``<name>`` is a table of the digits default
(``summary``, ``comparison``, ``counterfactuals``, ``attributions``), the same table of the
committed photo pipeline in ``pipelines/cats-vs-dogs`` prefixed ``photos-``, or
``benchmark-<name>``, the Markdown a benchmark script wrote to ``benchmarks/results/<name>.md``.
So every number on these pages is one that `dvc repro` or a benchmark wrote.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PAGE = Path("docs/results.md")
#: The pages whose marked tables are rebuilt (paths relative to ROOT); results.md is whole.
PAGES = (Path("README.md"), *sorted(p.relative_to(ROOT) for p in (ROOT / "docs").glob("*.md")
                                    if p.name != RESULTS_PAGE.name))
# The pipeline folder of each table-name prefix: "" the root (digits), "photos-" the photo one.
PIPELINES = {"": Path("."), "photos-": Path("pipelines/cats-vs-dogs")}
ATTRIBUTION_NAMES = {"grad_cam": "Grad-CAM", "score_cam": "Score-CAM",
                     "smoothgrad": "SmoothGrad", "lime": "LIME"}
MARKED = re.compile(r"<!-- results:([\w-]+) -->\n.*?<!-- /results -->", flags=re.S)


class Files:
    """Reads the project's files from the working tree or, given ``revision``, from git."""

    def __init__(self, root: Path = ROOT, revision: str | None = None):
        self.root, self.revision = Path(root), revision

    def text(self, path: Path | str) -> str:
        if self.revision is None:
            return (self.root / path).read_text()
        return subprocess.run(["git", "show", f"{self.revision}:{Path(path).as_posix()}"],
                              cwd=self.root, check=True, capture_output=True, text=True).stdout

    def json(self, path: Path | str):
        return json.loads(self.text(path))

    def csv(self, path: Path | str) -> pd.DataFrame:
        return pd.read_csv(io.StringIO(self.text(path)))

    def exists(self, path: Path | str) -> bool:
        try:
            self.text(path)
        except (OSError, subprocess.CalledProcessError):
            return False
        return True


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _number(value, pattern: str) -> str:
    """``value`` formatted, or a dash where the pipeline had nothing to average (NaN)."""
    return "–" if value is None or pd.isna(value) else pattern.format(value)


def summary_table(files: Files, pipeline: Path) -> list[str]:
    """Per counterfactual method, the headline numbers (``summary/`` and ``timings/summary/``)."""
    models = files.json(pipeline / "metrics/comparison.json")["models"]
    methods = files.csv(pipeline / "plots/evaluate/counterfactuals.csv")["method"].unique()
    rows = []
    for method in methods:
        row = files.json(pipeline / f"summary/{method}.json")
        seconds = files.json(pipeline / f"timings/summary/{method}.json").get("s_per_image")
        rows.append([method, _number(row.get("validity"), "{:.3f}"),
                     _number(row.get("median_l0"), "{:g}"),
                     _number(row.get("oracle"), "{:.2f}"), _number(seconds, "{:.3f}")])
    accuracies = ", ".join(
        f"{name} {files.json(pipeline / f'summary/{name}.json')['accuracy']:.4f}"
        for name in models)
    data = files.json(pipeline / "summary/data.json")
    return [*markdown_table(["method", "validity", "median L0 (pixels)", "oracle agreement",
                             "s / image"], rows), "",
            f"Test accuracy: {accuracies}. Data: {data['kept']:,} images kept, "
            f"{data['quarantined']:,} quarantined."]


def comparison_table(files: Files, pipeline: Path) -> list[str]:
    models = files.json(pipeline / "metrics/comparison.json")["models"]
    timings = _comparison_timings(files, pipeline)
    return markdown_table(
        ["model", "module", "backbone", "test accuracy", "95% interval", "test loss",
         "val accuracy", "parameters", "training s", "inference ms / image"],
        [[name, row["module"], row["backbone"], f"{row['test_accuracy']:.4f}",
          f"{row['test_accuracy_low']:.3f}–{row['test_accuracy_high']:.3f}",
          f"{row['test_loss']:.4f}", f"{row['val_accuracy']:.4f}", f"{row['parameters']:,}",
          _number(timings[name].get("training_seconds"), "{:.1f}"),
          _number(timings[name].get("inference_ms_per_image"), "{:.3f}")]
         for name, row in models.items()])


def _comparison_timings(files: Files, pipeline: Path) -> dict[str, dict]:
    # A pipeline run before the timings moved to timings/ kept them inside comparison.json.
    path = pipeline / "timings/comparison.json"
    source = files.json(path) if files.exists(path) else files.json(
        pipeline / "metrics/comparison.json")
    return source["models"]


def _with_seconds(files: Files, pipeline: Path, table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` with its ``mean_seconds`` column from ``timings/<name>`` where it moved there."""
    path = pipeline / "timings" / name
    if "mean_seconds" in table or not files.exists(path):
        return table
    keys = [key for key in ("model", "set", "method") if key in table]
    return table.merge(files.csv(path)[[*keys, "mean_seconds"]], on=keys, how="left")


def counterfactual_table(files: Files, pipeline: Path) -> list[str]:
    table = _with_seconds(files, pipeline, files.csv(pipeline / "plots/evaluate/counterfactuals.csv"),
                          "counterfactuals.csv")
    return markdown_table(
        ["model", "set", "method", "images", "validity", "median L1", "median L0",
         "median area", "median regions", "oracle agreement", "plausibility", "IM1", "IM2",
         "s / image"],
        [[row.model, row.set, row.method, str(row.num_images), f"{row.validity:.3f}",
          _number(row.median_l1, "{:.3g}"), _number(row.median_l0, "{:g}"),
          _number(row.median_area, "{:.1%}"), _number(row.median_regions, "{:g}"),
          _number(row.oracle_agreement, "{:.2f}"), _number(row.median_plausibility, "{:.3g}"),
          _number(row.median_im1, "{:.3g}"), _number(getattr(row, "median_im2", None), "{:.3g}"),
          _number(row.mean_seconds, "{:.3f}")]
         for row in table.itertuples()])


def attribution_table(files: Files, pipeline: Path) -> list[str]:
    table = _with_seconds(files, pipeline, files.csv(pipeline / "plots/evaluate/attributions.csv"),
                          "attributions.csv")
    means = table[table["set"] == "sampled"].groupby("method", sort=False)[
        ["mean_deletion_auc", "mean_insertion_auc", "mean_seconds"]].mean()
    return markdown_table(
        ["method", "deletion AUC", "insertion AUC", "s / image"],
        [[ATTRIBUTION_NAMES.get(method, method), f"{row.mean_deletion_auc:.3f}",
          f"{row.mean_insertion_auc:.3f}", f"{row.mean_seconds:.3f}"]
         for method, row in means.iterrows()])


def benchmark_table(files: Files, name: str) -> list[str]:
    """A benchmark's Markdown results, as its script wrote them under benchmarks/results."""
    return files.text(Path("benchmarks/results") / f"{name}.md").rstrip().splitlines()


TABLES: dict[str, Callable[[Files, Path], list[str]]] = {
    "summary": summary_table, "comparison": comparison_table,
    "counterfactuals": counterfactual_table, "attributions": attribution_table}


def table(files: Files, name: str) -> list[str]:
    """The lines of the table called ``name``; ValueError for a name no table has."""
    if name.startswith("benchmark-"):
        return benchmark_table(files, name.removeprefix("benchmark-"))
    prefix = "photos-" if name.startswith("photos-") else ""
    kind = name.removeprefix(prefix)
    if kind not in TABLES:
        raise ValueError(f"a page marks a table {name!r}; known: {', '.join(TABLES)}, each "
                         "also prefixed photos-, and benchmark-<name> for benchmarks/results/")
    return TABLES[kind](files, PIPELINES[prefix])


def render(text: str, files: Files | None = None) -> str:
    """``text`` with every marked table rebuilt from ``files`` (default: the working tree)."""
    files = files or Files()
    return MARKED.sub(lambda match: f"<!-- results:{match.group(1)} -->\n"
                      + "\n".join(table(files, match.group(1))) + "\n<!-- /results -->", text)


def results_page(files: Files | None = None) -> str:
    """The whole of docs/results.md: every table of the default run, with its source files."""
    files = files or Files()
    data = files.json("metrics/data.json")
    counts, splits = data["status_counts"], data["split_counts"]
    sections = [
        "# Results of the default run",
        "Generated by `python docs/results_tables.py` from the files `make repro` (`dvc repro`, "
        "default `params.yaml`) wrote; do not edit by hand. Seconds were measured on the machine "
        "that ran it and change from run to run (they live in `timings/`); every other number "
        "reproduces exactly.",
        "## Headline (`summary/`, `timings/`)",
        "Pooled over the explained models on the sampled test images; `dvc metrics show` prints "
        "the same numbers.",
        "\n".join(summary_table(files, PIPELINES[""])),
        "## Data (`metrics/data.json`)",
        f"{data['num_files']:,} files: {counts['kept']:,} kept, {counts['converted']:,} "
        f"converted, {counts['quarantined']:,} quarantined, {counts['skipped']:,} skipped; split "
        + " / ".join(f"{splits[name]:,} {name}" for name in ("train", "val", "test"))
        + ". Great Expectations: raw suite {raw[successful]} of {raw[evaluated]}, clean suite "
        "{clean[successful]} of {clean[evaluated]} expectations met.".format(**data["expectations"]),
        "## Models (`metrics/comparison.json`, `plots/comparison/models.png`)",
        "Test accuracy with its 95 % interval; training seconds are the fits only.",
        "\n".join(comparison_table(files, PIPELINES[""])),
        "## Counterfactuals (`plots/evaluate/counterfactuals.csv`)",
        "Every model and method on the sampled test images (target: any other class) and on the "
        "model's mistakes (target: the true label). Validity is re-predicted by the model; oracle "
        "agreement is the share of valid counterfactuals the independent `oracle` model also "
        "classifies as the class reached; IM1 below 1 means the new class's autoencoder explains "
        "the counterfactual better than the original class's. Definitions: "
        "[explanations.md](explanations.md).",
        "\n".join(counterfactual_table(files, PIPELINES[""])),
        "## Attributions (`plots/evaluate/attributions.csv`)",
        "Mean over the models on the sampled images; deletion AUC: lower is better, insertion "
        "AUC: higher is better.",
        "\n".join(attribution_table(files, PIPELINES[""])),
        "## Figures",
        "![Every method on the sampled digits of the base model]"
        "(../plots/explanations/base_sampled_methods.png)",
        "![Where PAM looks, before and after the counterfactual](../plots/attention_maps/pam.png)",
    ]
    return "\n\n".join(sections) + "\n"


def rendered_pages(files: Files | None = None) -> dict[Path, str]:
    """Every generated page's text as ``files`` make it, by path relative to ROOT."""
    files = files or Files()
    pages = {page: render((ROOT / page).read_text(), files) for page in PAGES}
    pages[RESULTS_PAGE] = results_page(files)
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check that the pages match the pipeline's files")
    check = parser.parse_args().check
    stale = []
    for page, text in rendered_pages().items():
        path = ROOT / page
        if path.exists() and path.read_text() == text:
            continue
        stale.append(page)
        if not check:
            path.write_text(text)
    if check and stale:
        print(f"{', '.join(map(str, stale))} differ from the pipeline's files; run "
              "`python docs/results_tables.py`", file=sys.stderr)
        return 1
    pages = len(PAGES) + 1
    print(f"checked {pages} pages" if check else f"rewrote {len(stale)} of {pages} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
