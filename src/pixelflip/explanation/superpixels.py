"""Superpixels: the regions LIME perturbs and the region counterfactuals replace.

One function, so both methods split an image the same way for the same settings.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import slic


def superpixels(image: np.ndarray, *, num_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels of one image.

    Parameters
    ----------
    image : float array of shape (H, W, C), C = 1 or 3, or (H, W)
        Pixels in [0, 1]. A greyscale image is segmented as three equal channels, as LIME does,
        so that ``compactness`` weighs colour distance in the same CIELAB units for both.
    num_segments : int >= 1
        About how many superpixels SLIC makes (it may make fewer on a small image).
    compactness : float > 0
        Higher values give squarer, more regular superpixels.

    Returns
    -------
    int array of shape (H, W): each pixel's superpixel label, from 0 (SLIC may skip labels).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., np.newaxis], 3, axis=-1)
    return slic(image, n_segments=int(num_segments), compactness=float(compactness),
                start_label=0)
