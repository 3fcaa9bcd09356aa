"""The labelled training images the plausibility measures compare counterfactuals with.

Shared by :mod:`pixelflip.evaluation.plausibility`, :mod:`pixelflip.evaluation.im1` and
:mod:`pixelflip.evaluation.autoencoders`: the training split is taken as the stages load it
(a uint8 memory map is fine) and converted to [0, 1] floats one batch at a time.
"""

from __future__ import annotations

import numpy as np


def check_training_set(
    train_images, train_labels, *, image_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Check a labelled training set and return it as arrays, without reading its pixels.

    Parameters
    ----------
    train_images : array of shape (M, H, W, C), M >= 1
        uint8 pixels, or floating-point pixels in [0, 1] (not checked: that would read them).
    train_labels : int array of shape (M,)
        Class indices >= 0.
    image_shape : (H, W, C) or None
        The shape every image must have, if given.

    Returns
    -------
    train_images : the images as a NumPy array (a memory map stays one)
    train_labels : int64 array (M,)
    """
    # np.asarray keeps a memory map a view, so nothing is read here.
    train_images = np.asarray(train_images)
    if train_images.ndim != 4 or train_images.shape[0] < 1:
        raise ValueError(
            f"train_images has shape {train_images.shape}; expected (M, H, W, C) with at least "
            "one image."
        )
    if image_shape is not None and train_images.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"train_images have shape {train_images.shape[1:]} per image; expected "
            f"{tuple(image_shape)}, the shape of the counterfactuals."
        )
    if train_images.dtype != np.uint8 and not np.issubdtype(train_images.dtype, np.floating):
        raise ValueError(
            f"train_images has dtype {train_images.dtype}; expected uint8 or floating-point "
            "pixels in [0, 1]."
        )
    train_labels = np.asarray(train_labels)
    if train_labels.shape != (len(train_images),) or not np.issubdtype(
        train_labels.dtype, np.integer
    ):
        raise ValueError(
            f"train_labels has shape {train_labels.shape} and dtype {train_labels.dtype}; "
            f"expected ({len(train_images)},) integers, one class index per training image."
        )
    if len(train_labels) and train_labels.min() < 0:
        raise ValueError(
            f"train_labels contains {int(train_labels.min())}; expected class indices >= 0."
        )
    return train_images, train_labels.astype(np.int64)


def to_unit_float(images: np.ndarray, dtype) -> np.ndarray:
    """Pixels that :func:`check_training_set` accepts, as ``dtype`` values in [0, 1].

    uint8 pixels are divided by 255; floating-point pixels are taken as they are (a copy only
    where ``dtype`` differs from theirs).
    """
    if images.dtype == np.uint8:
        converted = images.astype(dtype)
        converted /= 255
        return converted
    return np.asarray(images, dtype=dtype)
