"""How the counterfactual figures show what a method changed: the change mask outlined over an
image (or tinted, for a haze too fragmented to outline), its caption (area, connected regions)
and the real image a region method copied its regions from.
"""

from __future__ import annotations

import numpy as np
from matplotlib import patheffects
from matplotlib.colors import to_rgb

from pixelflip.explanation.changed_regions import changed_regions, check_mask
from pixelflip.plots.common import _draw_image

# Cyan with a thin black edge: visible on white digits, black backgrounds and most photos alike.
OUTLINE_COLOR = "#00e5ff"
# Outlines longer than this many times (H + W) pixel edges would cover about a fifth of a panel:
# a pixel method's haze (a random half of a 128 x 128 image: ~30), not regions (the region
# method's 8 largest of 25 superpixels: ~5).
_MAX_OUTLINE_LENGTH = 10
_TINT_ALPHA = 0.45


def describe_changed_regions(mask) -> str:
    """``"area 12% · 2 regions"``: :func:`changed_regions` of ``mask`` (H, W) as a caption."""
    share, count = changed_regions(mask)
    return f"area {_percent(share)} · {count} region{'' if count == 1 else 's'}"


def _percent(share: float) -> str:
    # Whole percents read best, but a few changed pixels must not read as "0%" (nothing).
    if share == 0 or share >= 0.01:
        return f"{100 * share:.0f}%"
    return f"{100 * share:.1f}%" if share >= 0.001 else "<0.1%"


def _draw_changes(axis, mask: np.ndarray) -> None:
    """Mark the True pixels of ``mask`` (H, W) over the image drawn on ``axis``.

    Normally their boundary, in :data:`OUTLINE_COLOR` edged in black, along pixel edges (the 0.5
    level between a changed and an unchanged pixel's centre; the mask is padded with False so
    that regions touching the border are closed too). A mask too fragmented to outline (more
    than ``_MAX_OUTLINE_LENGTH * (H + W)`` edges between changed and unchanged pixels: a pixel
    method's haze) is tinted instead, since its outlines would hide the image.
    """
    mask = check_mask("mask", mask)
    if not mask.any():
        return
    height, width = mask.shape
    edges = (np.count_nonzero(mask[1:] != mask[:-1])
             + np.count_nonzero(mask[:, 1:] != mask[:, :-1]))
    if edges > _MAX_OUTLINE_LENGTH * (height + width):
        tint = np.zeros((height, width, 4), dtype=np.float32)
        tint[mask] = (*to_rgb(OUTLINE_COLOR), _TINT_ALPHA)
        axis.imshow(tint, interpolation="nearest")
        return
    limits = axis.get_xlim(), axis.get_ylim()
    outline = axis.contour(
        np.arange(-1, width + 1), np.arange(-1, height + 1), np.pad(mask, 1).astype(np.float32),
        levels=[0.5], colors=OUTLINE_COLOR, linewidths=1.0,
    )
    outline.set_path_effects([patheffects.withStroke(linewidth=2.0, foreground="black")])
    # contour autoscales to its padded grid; keep the image's own extent (and its y direction).
    axis.set_xlim(limits[0])
    axis.set_ylim(limits[1])


def _check_distractors(name: str, distractors, shape: tuple[int, ...]) -> np.ndarray:
    """``distractors`` as float32 of ``shape`` (N, H, W, C), finite; ValueError naming ``name``."""
    distractors = np.asarray(distractors, dtype=np.float32)
    if distractors.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {distractors.shape}; expected {tuple(shape)}, one image per image "
            "of the result, of its shape."
        )
    if not np.all(np.isfinite(distractors)):
        raise ValueError(f"{name} contains NaN or infinite values; expected pixels in [0, 1].")
    return distractors


def _distractors_to_draw(name: str, distractors, result, rows) -> np.ndarray | None:
    """``distractors`` (N, H, W, C) checked against ``result``'s images, or None when no column
    is drawn for its images ``rows``: none were given, or none of these images has a distractor
    (every ``result.distractor_indices[rows]`` is -1). ValueError naming ``name``."""
    if distractors is None:
        return None
    distractors = _check_distractors(name, distractors, result.originals.shape)
    return distractors if np.any(result.distractor_indices[list(rows)] >= 0) else None


def _draw_distractor(axis, distractor, index: int, mask: np.ndarray) -> None:
    """The distractor (H, W, C), image ``index`` of the references, its copied regions outlined;
    an empty panel saying "none" when ``index`` is -1 (no distractor was used)."""
    if index < 0:
        axis.set_title("distractor", fontsize=9)
        axis.set_label("distractor")
        axis.text(0.5, 0.5, "none", ha="center", va="center", transform=axis.transAxes,
                  fontsize=9, color="0.4")
        axis.set_xticks([])
        axis.set_yticks([])
        return
    _draw_image(axis, distractor, f"distractor #{index}", label="distractor")
    # The region method pastes the distractor's pixels at the same positions: these regions.
    _draw_changes(axis, mask)
