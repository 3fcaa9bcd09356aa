"""Figures as MLflow images: every PNG under ``plots/`` a stage logs shows in its run's image grid.

A file logged as an artifact is only seen by opening it in the run's artifact tree. A figure
logged with ``mlflow.log_image`` and a *key* also shows in the run's "Model metrics" tab, one
card per key, in a section per folder, and can be set side by side with the same figure of other
runs in the experiment's chart view. :func:`pixelflip.tracking.runs.log_artifacts` calls
:func:`log_figures` on everything it logs, so every stage that logs its figures' folder (or one
figure) logs them as images too, and no call site has to remember it.

Only PNGs under ``layout.PLOTS_DIR`` are figures: other folders a stage logs hold PNGs that are
not results (the logos of the Data Docs site under ``reports/``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pixelflip.stage import layout

FIGURE_SUFFIX = ".png"


def figure_key(path: str | os.PathLike) -> str | None:
    """The image key of a figure: its path under ``plots/`` without ``.png``, or None.

    ``plots/explanations/base_sampled_elastic_net.png`` has the key
    ``explanations/base_sampled_elastic_net`` (the part before the first ``/`` names its
    section in the UI). A path outside ``plots/``, or not a PNG, has none. Characters MLflow
    refuses in a key become ``_``.
    """
    path = Path(path)
    if path.suffix.lower() != FIGURE_SUFFIX:
        return None
    try:
        relative = path.resolve().relative_to(layout.PLOTS_DIR.resolve())
    except ValueError:
        return None
    return re.sub(r"[^\w\-./ ]", "_", relative.with_suffix("").as_posix())


def figures(path: str | os.PathLike) -> dict[str, Path]:
    """``{key: file}`` of the figures at ``path``: the file itself, or every PNG below a folder,
    in path order."""
    path = Path(path)
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    found = {}
    for file in files:
        key = figure_key(file)
        if key is not None and file.is_file():
            found[key] = file
    return found


def log_figures(path: str | os.PathLike) -> list[str]:
    """Log each figure at ``path`` (see :func:`figures`) to the active run as an image with its
    key, at step 0; returns the keys. The caller checks that a run is active and tolerates
    store failures (:func:`pixelflip.tracking.runs.log_artifacts` does both)."""
    import mlflow
    from PIL import Image

    logged = []
    for key, file in figures(path).items():
        with Image.open(file) as image:
            image.load()
            mlflow.log_image(image, key=key, step=0)
        logged.append(key)
    return logged
