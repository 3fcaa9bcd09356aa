"""What every figure shares: the renderer, the PNG writer, colours and image-drawing helpers.

Figures are made with :func:`_new_figure`: a :class:`matplotlib.figure.Figure` attached to its
own Agg canvas and not registered with pyplot, so no display backend is needed and nothing leaks
between calls.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from pixelflip.stage.files import atomic_path

DPI = 120
# Diverging and reversed so that positive changes (brighter) are red, negative (darker) blue.
PERTURBATION_COLORMAP = "RdBu_r"
ATTRIBUTION_COLORMAP = "jet"
SUCCESS_COLOR = "#1a7f37"
FAILURE_COLOR = "#cf222e"


def save_figure(figure: Figure, path: str | os.PathLike) -> None:
    """Write ``figure`` to ``path`` as a PNG at 120 dpi, atomically, and release it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    if "matplotlib.pyplot" in sys.modules:
        # Only figures made through pyplot are held open by it; closing ours is a no-op.
        sys.modules["matplotlib.pyplot"].close(figure)


def _new_figure(**kwargs) -> Figure:
    figure = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(figure)
    return figure


def _check_image(name: str, image) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} has shape {image.shape}; expected (H, W, C) with 1 or 3 channels."
        )
    return image


def _draw_image(axis, image, title: str, *, label: str | None = None) -> None:
    """Greyscale (H, W, 1) in grey, (H, W, 3) in colour, without ticks."""
    if image.shape[-1] == 1:
        axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        axis.imshow(np.clip(image, 0.0, 1.0))
    axis.set_title(title, fontsize=9)
    if label:
        axis.set_label(label)
    axis.set_xticks([])
    axis.set_yticks([])


def _check_attribution_maps(name: str, maps, count: int) -> np.ndarray:
    """``maps`` as float32 (count, h, w); (count, h, w, 1) is squeezed. Finite values only."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 4 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    if maps.ndim != 3 or len(maps) != count:
        raise ValueError(
            f"{name} has shape {maps.shape}; expected ({count}, h, w), one map per image."
        )
    if not np.all(np.isfinite(maps)):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite.")
    return maps


def _draw_attribution(
    axis, image: np.ndarray, attribution_map: np.ndarray, *, title: str, label: str
) -> None:
    """``image`` in grey with the (h, w) ``attribution_map`` in "jet" over it, half transparent.

    The map runs from min(0, its minimum) to its maximum and may have any resolution.
    """
    _draw_image(axis, image.mean(axis=-1, keepdims=True), title, label=label)
    height, width = image.shape[:2]
    low, high = min(0.0, float(attribution_map.min())), float(attribution_map.max())
    # The extent stretches a coarse map (a late feature map's resolution) over the whole image.
    axis.imshow(
        attribution_map, cmap=ATTRIBUTION_COLORMAP, alpha=0.45, interpolation="bilinear",
        norm=Normalize(vmin=low, vmax=high if high > low else low + 1.0),
        extent=(-0.5, width - 0.5, height - 0.5, -0.5),
    )
