"""Per-image counterfactual results as MLflow tables, with the images in them.

The counterfactuals stage logs one table per model, image set and method
(``tables/<model>.<set>.<method>.json`` in its run's artifacts). The run's artifact view shows
it as a table: one row per counterfactual, with the original, the counterfactual and the change
as images, the classes involved, whether it is valid and how large the change is.

MLflow stores each image of a table as a PNG (and a 256-pixel WebP preview the UI shows) under
``table_images/`` in the run's artifacts. Digits are 28 pixels wide, so images narrower than
:data:`MIN_IMAGE_SIDE` are enlarged by a whole factor, nearest neighbour, keeping every pixel a
sharp square.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Images narrower than this many pixels are enlarged by a whole factor to at least this width.
MIN_IMAGE_SIDE = 84
#: The artifact folder of the tables, in the run that logs them.
TABLES_DIR = "tables"
IMAGE_COLUMNS = ("original", "counterfactual", "change")
CLASS_COLUMNS = ("source class", "target class", "reached class")
SIZE_COLUMNS = ("L0", "L1", "L2")


def table_image(pixels: np.ndarray) -> Any:
    """A PIL image of ``pixels`` (H, W, C), C = 1 (grey) or 3 (RGB), values in [0, 1] (clipped),
    enlarged to :data:`MIN_IMAGE_SIDE` as the module docstring says."""
    from PIL import Image

    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3):
        raise ValueError(f"pixels has shape {pixels.shape}; expected (H, W, C) with 1 or 3 "
                         "channels.")
    values = np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(values[..., 0] if values.shape[-1] == 1 else values)
    factor = -(-MIN_IMAGE_SIDE // image.width)  # ceiling division
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    return image


def change_image(perturbation: np.ndarray) -> Any:
    """The change of one counterfactual as a PIL RGB image, like the figures' perturbation panel.

    ``perturbation`` (H, W, C) in [-1, 1] is averaged over channels: white where nothing
    changed, red where the counterfactual is brighter, blue where it is darker, full colour at
    the image's largest change.
    """
    perturbation = np.asarray(perturbation, dtype=np.float32)
    if perturbation.ndim != 3:
        raise ValueError(f"perturbation has shape {perturbation.shape}; expected (H, W, C).")
    change = perturbation.mean(axis=-1)
    limit = float(np.abs(change).max()) or 1.0
    strength = np.abs(change) / limit
    fade = 1.0 - strength
    brighter = change > 0
    colour = np.stack([np.where(brighter, 1.0, fade), fade, np.where(brighter, fade, 1.0)],
                      axis=-1)
    return table_image(colour)


def counterfactual_table(result: Any, class_names: Sequence[str], *,
                         test_indices: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per counterfactual of ``result`` (a ``CounterfactualResult``).

    Columns: ``test index`` (only with ``test_indices``, one per row: the test image it
    explains), the :data:`IMAGE_COLUMNS` as PIL images (see :func:`table_image` and
    :func:`change_image`), ``source class`` (the model's prediction on the original),
    ``target class`` (the class asked for, or "any other"), ``reached class`` (the prediction on
    the counterfactual), ``valid`` (it reached the target), and ``L0`` (pixel positions changed
    at all: unlike the evaluation's L0, no change is too small to count), ``L1`` and ``L2``
    (sum of absolute changes and Euclidean norm, over every channel, in [0, 1] pixel units).

    Raises
    ------
    ValueError
        If ``result`` is not a CounterfactualResult, ``class_names`` does not name its K
        classes, or ``test_indices`` does not hold one index per row.
    """
    from pixelflip.counterfactuals.result import check_result, target_label
    from pixelflip.evaluation.counterfactual_metrics import counterfactual_metrics

    check_result(result)
    names = [str(name) for name in class_names]
    if len(names) != result.num_classes:
        raise ValueError(f"class_names has {len(names)} entries; expected {result.num_classes}, "
                         "one per class of the result.")
    sizes = counterfactual_metrics(result, change_tolerance=0.0)
    columns: dict[str, Any] = {}
    if test_indices is not None:
        test_indices = np.asarray(test_indices, dtype=np.int64)
        if test_indices.shape != (len(result),):
            raise ValueError(f"test_indices has shape {test_indices.shape}; expected "
                             f"({len(result)},), one per counterfactual.")
        columns["test index"] = test_indices
    columns.update({
        "original": [table_image(image) for image in result.originals],
        "counterfactual": [table_image(image) for image in result.counterfactuals],
        "change": [change_image(change) for change in result.perturbations],
        "source class": [names[index] for index in result.original_predictions],
        "target class": [target_label(int(target), names) for target in result.targets],
        "reached class": [names[index] for index in result.counterfactual_predictions],
        "valid": result.success,
        "L0": sizes["l0"].to_numpy(),
        "L1": sizes["l1"].round(4).to_numpy(),
        "L2": sizes["l2"].round(4).to_numpy(),
    })
    return pd.DataFrame(columns)


def table_artifact_file(name: str) -> str:
    """Where the table ``name`` (``base.sampled.elastic_net``) lies in its run's artifacts."""
    return f"{TABLES_DIR}/{name}.json"


def log_counterfactual_table(result: Any, class_names: Sequence[str], name: str, *,
                             test_indices: Sequence[int] | None = None) -> str | None:
    """Log :func:`counterfactual_table` of ``result`` to the active run as the table ``name``.

    Returns its artifact path (:func:`table_artifact_file`), or None when no run is active (the
    images are then not even made) or the store failed. Logging the same name twice in one run
    appends the rows, as ``mlflow.log_table`` does.
    """
    import mlflow

    from pixelflip.tracking.outage import tolerated

    if mlflow.active_run() is None:
        return None
    table = counterfactual_table(result, class_names, test_indices=test_indices)
    artifact_file = table_artifact_file(name)
    with tolerated("log a counterfactual table"):
        mlflow.log_table(table, artifact_file=artifact_file)
        return artifact_file
    return None
