"""Experiments side by side in 120 columns: the headline of each, and the params that differ.

``dvc exp show`` puts every param and metric in a column of its own: hundreds of them here, so
at 120 columns every cell is "…". This table turns it round: one row per headline metric
(``summary/`` and ``timings/summary/``, as ``<file>.<key>``: ``elastic_net.validity``) and per
param whose value differs between the rows shown, one column per experiment, in blocks that
fit the width::

    python -m pixelflip.reports.experiments            # the workspace, HEAD and its experiments
    python -m pixelflip.reports.experiments -A         # any `dvc exp show` option passes through

Run it in the pipeline's folder (the project root, or ``pipelines/cats-vs-dogs``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelflip.stage import layout
from pixelflip.tracking.runs import flatten

WIDTH = 120
#: The folders whose metrics files make the headline, relative to the pipeline folder.
HEADLINE_DIRS = (layout.SUMMARY_DIR, layout.SUMMARY_TIMINGS_DIR)


def experiment_rows(shown: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every commit and experiment of ``dvc exp show --json``, in its order."""
    for entry in shown:
        yield entry
        for group in entry.get("experiments") or ():
            yield from experiment_rows(group.get("revs") or ())


def headline_of(entry: Mapping[str, Any], pipeline: Path) -> dict[str, Any]:
    """``{"<file stem>.<key>": value}`` of the headline files of ``pipeline`` in one row."""
    values = {}
    for path, content in ((entry.get("data") or {}).get("metrics") or {}).items():
        relative = Path(path)
        if pipeline != Path(".") and relative.is_relative_to(pipeline):
            relative = relative.relative_to(pipeline)
        if relative.parent in HEADLINE_DIRS:
            for key, value in flatten("", (content or {}).get("data") or {}).items():
                values[f"{relative.stem}.{key}"] = value
    return values


def params_of(entry: Mapping[str, Any], pipeline: Path) -> dict[str, Any]:
    """The flat params of ``pipeline``'s params.yaml in one row."""
    params = (entry.get("data") or {}).get("params") or {}
    content = params.get((pipeline / "params.yaml").as_posix()) or params.get("params.yaml") or {}
    return flatten("", content.get("data") or {})


def _short(rev: str) -> str:
    """A commit's first 7 hex digits; ``workspace`` as it is."""
    return rev[:7] if len(rev) == 40 else rev


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(shown: Sequence[Mapping[str, Any]], pipeline: Path = Path("."),
          width: int = WIDTH) -> str:
    """The side-by-side text of ``dvc exp show --json`` output, no line over ``width``."""
    rows = [row for row in experiment_rows(shown) if row.get("data")]
    if not rows:
        raise ValueError("dvc exp show listed no commit or experiment; run `dvc exp run` "
                         "(or commit a pipeline run) first.")
    names = [row.get("name") or _short(str(row.get("rev", ""))) for row in rows]
    params = [params_of(row, pipeline) for row in rows]
    headline = [headline_of(row, pipeline) for row in rows]
    changed = sorted({key for values in params for key in values
                      if len({json.dumps(p.get(key), default=str) for p in params}) > 1})
    metrics = sorted({key for values in headline for key in values})
    lines_of = [(f"param {key}", [_cell(p.get(key)) for p in params]) for key in changed]
    lines_of += [(key, [_cell(h.get(key)) for h in headline]) for key in metrics]
    label_width = min(max([len(label) for label, _ in lines_of] + [10]), width // 2)
    cell_width = max(10, *(len(name) for name in names))
    cell_width = min(cell_width, width - label_width - 2)
    per_block = max(1, (width - label_width) // (cell_width + 2))
    blocks = []
    for start in range(0, len(names), per_block):
        columns = slice(start, start + per_block)
        header = " " * label_width + "".join(
            f"  {name[:cell_width]:>{cell_width}}" for name in names[columns])
        body = [f"{label[:label_width]:<{label_width}}" + "".join(
            f"  {cell[:cell_width]:>{cell_width}}" for cell in cells[columns])
            for label, cells in lines_of]
        blocks.append("\n".join([header, *body]))
    return "\n\n".join(blocks)


def main(arguments: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if arguments is None else arguments)
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    shown = subprocess.run([dvc, "exp", "show", "--json", *arguments], check=True,
                           capture_output=True, text=True).stdout
    root = subprocess.run([dvc, "root"], check=True, capture_output=True, text=True).stdout
    pipeline = Path.cwd().resolve().relative_to((Path.cwd() / root.strip()).resolve())
    print(table(json.loads(shown), pipeline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
