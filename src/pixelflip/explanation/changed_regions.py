"""How much of an image a counterfactual changed, and in how many places.

The evaluation reports these per counterfactual and the figures caption them, from the same
function: the share of pixel positions in a change mask and its 8-connected regions (a few for
a region counterfactual, hundreds for a haze of pixel changes).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# 8-connectivity: pixels touching at a corner belong to one region, as a person would see them.
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def changed_regions(mask) -> tuple[float, int]:
    """Share of pixels changed, in [0, 1], and the number of 8-connected changed regions.

    ``mask`` has shape (H, W) and holds booleans (or 0 and 1): True where the method was allowed
    to change the image, as ``CounterfactualResult.masks[i]``.
    """
    mask = check_mask("mask", mask)
    _, count = ndimage.label(mask, structure=_EIGHT_NEIGHBOURS)
    return float(mask.mean()), int(count)


def check_mask(name: str, mask) -> np.ndarray:
    """``mask`` as a bool (H, W) array; ValueError naming ``name`` unless 2-D booleans (or 0/1)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"{name} has shape {mask.shape}; expected a non-empty (H, W) mask.")
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError(f"{name} holds values other than True/False (or 0/1); expected a mask.")
    return mask.astype(bool)
