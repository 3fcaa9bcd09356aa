"""Write the README's result tables from the files the pipeline wrote.

    python docs/results_tables.py           # rewrite the tables in README.md
    python docs/results_tables.py --check   # exit 1 if README.md differs from the files

Each table sits between ``<!-- results:<name> -->`` and ``<!-- /results -->`` in README.md and
is rebuilt from ``metrics/comparison.json`` and the tables under ``plots/evaluate/``, so a number
in the README is always one `dvc repro` wrote. ``<name>`` is a table of the digits default
(``comparison``) or, prefixed ``photos-``, the same table of the committed photo pipeline in
``pipelines/cats-vs-dogs`` (``photos-comparison``); ``benchmark-<name>`` is the Markdown a
benchmark script wrote to ``benchmarks/results/<name>.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The pipeline folder of each table-name prefix: "" the root (digits), "photos-" the photo one.
PIPELINES = {"": ROOT, "photos-": ROOT / "pipelines" / "cats-vs-dogs"}
ATTRIBUTION_NAMES = {"grad_cam": "Grad-CAM", "score_cam": "Score-CAM",
                     "smoothgrad": "SmoothGrad", "lime": "LIME"}


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def comparison_table(pipeline: Path) -> list[str]:
    models = json.loads((pipeline / "metrics/comparison.json").read_text())["models"]
    return markdown_table(
        ["model", "module", "backbone", "test accuracy", "95% interval", "test loss",
         "val accuracy", "parameters", "training s", "inference ms / image"],
        [[name, row["module"], row["backbone"], f"{row['test_accuracy']:.4f}",
          f"{row['test_accuracy_low']:.3f}–{row['test_accuracy_high']:.3f}",
          f"{row['test_loss']:.4f}", f"{row['val_accuracy']:.4f}", f"{row['parameters']:,}",
          f"{row['training_seconds']:.1f}", f"{row['inference_ms_per_image']:.3f}"]
         for name, row in models.items()])


def counterfactual_table(pipeline: Path) -> list[str]:
    table = pd.read_csv(pipeline / "plots/evaluate/counterfactuals.csv")
    return markdown_table(
        ["model", "set", "method", "images", "validity", "median L1", "median L0",
         "median area", "median regions", "oracle agreement", "plausibility", "IM1", "IM2",
         "s / image"],
        [[row.model, row.set, row.method, str(row.num_images), f"{row.validity:.3f}",
          _number(row.median_l1, "{:.3g}"), _number(row.median_l0, "{:g}"),
          _number(row.median_area, "{:.1%}"), _number(row.median_regions, "{:g}"),
          _number(row.oracle_agreement, "{:.2f}"), _number(row.median_plausibility, "{:.3g}"),
          _number(row.median_im1, "{:.3g}"),
          # IM2 needs the shared autoencoder, which a pipeline run before issue 14 lacks.
          _number(getattr(row, "median_im2", float("nan")), "{:.3g}"),
          f"{row.mean_seconds:.3f}"]
         for row in table.itertuples()])


def _number(value, pattern: str) -> str:
    """``value`` formatted, or a dash where the pipeline had nothing to average (NaN)."""
    return "–" if pd.isna(value) else pattern.format(value)


def benchmark_table(name: str) -> list[str]:
    """A benchmark's Markdown results, as its script wrote them under benchmarks/results."""
    return (ROOT / "benchmarks" / "results" / f"{name}.md").read_text().rstrip().splitlines()


def attribution_table(pipeline: Path) -> list[str]:
    table = pd.read_csv(pipeline / "plots/evaluate/attributions.csv")
    means = table[table["set"] == "sampled"].groupby("method", sort=False)[
        ["mean_deletion_auc", "mean_insertion_auc", "mean_seconds"]].mean()
    return markdown_table(
        ["method", "deletion AUC", "insertion AUC", "s / image"],
        [[ATTRIBUTION_NAMES.get(method, method), f"{row.mean_deletion_auc:.3f}",
          f"{row.mean_insertion_auc:.3f}", f"{row.mean_seconds:.3f}"]
         for method, row in means.iterrows()])


TABLES = {"comparison": comparison_table, "counterfactuals": counterfactual_table,
          "attributions": attribution_table}


def render(text: str) -> str:
    """``text`` with every marked table rebuilt; ValueError for a marker without a table."""
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("benchmark-"):
            rows = benchmark_table(name.removeprefix("benchmark-"))
            return f"<!-- results:{name} -->\n" + "\n".join(rows) + "\n<!-- /results -->"
        prefix, table = ("photos-", name.removeprefix("photos-")) if name.startswith(
            "photos-") else ("", name)
        if table not in TABLES:
            raise ValueError(f"README.md marks a table {name!r}; known: {', '.join(TABLES)}, "
                             "each also prefixed photos-")
        rows = TABLES[table](PIPELINES[prefix])
        return f"<!-- results:{name} -->\n" + "\n".join(rows) + "\n<!-- /results -->"

    return re.sub(r"<!-- results:([\w-]+) -->\n.*?<!-- /results -->", replace, text,
                  flags=re.S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check that README.md matches the pipeline's files")
    check = parser.parse_args().check
    text = README.read_text()
    rendered = render(text)
    if check:
        if rendered != text:
            print("README.md's result tables differ from the pipeline's files; run "
                  "`python docs/results_tables.py`", file=sys.stderr)
            return 1
        return 0
    README.write_text(rendered)
    print(f"rewrote {len(re.findall('<!-- results:', rendered))} tables in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
