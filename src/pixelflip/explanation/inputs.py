"""What every explanation method receives: checked images and targets, and the model's
predictions on them.

Counterfactual and attribution methods alike take ``(model, images, targets)``;
:func:`validate_explain_inputs` checks the three fit together, and :func:`predict_probabilities`
is how every method asks the model for its answer.
"""

from __future__ import annotations

import numpy as np

from pixelflip.explanation.targets import ANY_OTHER


def validate_explain_inputs(
    model, images, targets, *, clip_min: float = 0.0, clip_max: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Check what a counterfactual method was given and return it as NumPy arrays.

    Parameters
    ----------
    model : keras.Model
        Maps (N, H, W, C) float32 images to (N, K) softmax probabilities.
    images : array of shape (N, H, W, C), N >= 1
        Pixels in [clip_min, clip_max].
    targets : int array of shape (N,)
        A class in 0..K-1 or ``ANY_OTHER`` (-1) per image.

    Returns
    -------
    images : float32 array (N, H, W, C)
    targets : int64 array (N,)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] < 1:
        raise ValueError(
            f"images has shape {images.shape}; expected (N, H, W, C) with at least one image."
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"images has dtype {images.dtype}; expected floating-point pixels in "
            f"[{clip_min}, {clip_max}] (divide uint8 images by 255)."
        )
    images = images.astype(np.float32, copy=False)
    if not np.all(np.isfinite(images)):
        raise ValueError("images contains NaN or infinite pixels; expected finite values.")
    low, high = float(images.min()), float(images.max())
    if low < clip_min or high > clip_max:
        raise ValueError(
            f"images has pixels in [{low:.4g}, {high:.4g}]; expected values in "
            f"[{clip_min}, {clip_max}]."
        )
    expected_shape = tuple(model.inputs[0].shape[1:])
    mismatched = any(
        size is not None and size != actual
        for size, actual in zip(expected_shape, images.shape[1:])
    )
    if len(expected_shape) != 3 or mismatched:
        raise ValueError(
            f"images have shape {images.shape[1:]} per image; the model expects {expected_shape}."
        )
    num_classes = int(model.outputs[0].shape[-1])
    targets = np.asarray(targets)
    if targets.shape != (images.shape[0],) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"targets has shape {targets.shape} and dtype {targets.dtype}; expected "
            f"({images.shape[0]},) integers, one per image."
        )
    targets = targets.astype(np.int64)
    if np.any((targets < ANY_OTHER) | (targets >= num_classes)):
        bad = sorted(set(targets[(targets < ANY_OTHER) | (targets >= num_classes)].tolist()))
        raise ValueError(
            f"targets contains {bad}; expected class indices in 0..{num_classes - 1} or "
            f"{ANY_OTHER} (any other class)."
        )
    return images, targets


def unit_float_images(images) -> np.ndarray:
    """``images`` as float32 in [0, 1]: uint8 pixels (as the stages store them) divided by 255,
    float pixels kept as they are."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def predict_probabilities(model, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Softmax outputs (N, K) float32 of ``model`` in inference mode, computed in batches."""
    chunks = [
        np.asarray(model(images[start : start + batch_size], training=False), dtype=np.float32)
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks)
