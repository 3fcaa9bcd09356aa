"""How faithful attribution maps are: deletion and insertion curves (Petsiuk et al. 2018, RISE).

Deletion replaces the pixels of an image with a baseline in decreasing order of attribution and
follows the probability of the target class: a faithful map destroys the evidence first, so the
probability falls fast and the area under the curve is small. Insertion starts from the baseline
and puts the pixels back in the same order: a faithful map restores the evidence first, so the
area is large. Both curves are sampled at ``steps + 1`` evenly spaced fractions of the pixels,
and the areas are over the fraction axis [0, 1], so they lie in [0, 1].
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.ndimage import gaussian_filter

from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.explanation.inputs import validate_explain_inputs


def deletion_insertion_auc(
    model,
    images,
    maps,
    targets,
    *,
    steps: int = 20,
    baseline: float | str = 0.0,
    blur_sigma: float = 5.0,
    batch_size: int = 128,
    random_state: int = 0,
) -> dict[str, np.ndarray]:
    """Deletion and insertion curves and their areas, per image.

    A "pixel" is a spatial position: all its channels are removed or inserted together. Ties in
    a map (Grad-CAM's ReLU leaves many zeros) are broken in a random order fixed by
    ``random_state``, not in raster order, which would favour one corner of every image.

    Parameters
    ----------
    model : keras.Model
        Maps (N, H, W, C) float32 images to (N, K) softmax probabilities.
    images : float array of shape (N, H, W, C)
        Pixels in [0, 1].
    maps : float array of shape (N, H, W)
        Attribution per pixel (only the order within each map matters), e.g.
        ``AttributionResult.maps``.
    targets : int array of shape (N,)
        Class in 0..K-1 whose probability the curves follow.
    steps : int >= 1, default 20
        Curve points after the start; step ``k`` changes ``round(k / steps * H * W)`` pixels.
    baseline : float in [0, 1] or "blur", default 0.0
        What replaces a deleted pixel and what insertion starts from: a constant, or the image
        blurred by a Gaussian of ``blur_sigma`` pixels (RISE's choice for insertion).
    blur_sigma : float > 0, default 5.0
        Standard deviation of the blur, in pixels; used with ``baseline="blur"`` only.
    batch_size : int >= 2, default 128
        Images per model call; each call holds deletion and insertion rows of several
        (image, step) pairs.
    random_state : int >= 0, default 0
        Seeds the tie-breaking order.

    Returns
    -------
    dict with ``fractions`` (steps + 1,) the fraction of pixels changed at each step,
    ``deletion_curve`` and ``insertion_curve`` (N, steps + 1) target probabilities, and
    ``deletion_auc`` and ``insertion_auc`` (N,) float64 areas (deletion: lower is better;
    insertion: higher is better).

    Raises
    ------
    ValueError
        Inputs that do not fit the model or each other, or a bad setting.
    """
    check_integer("steps", steps, minimum=1)
    check_integer("batch_size", batch_size, minimum=2)
    check_integer("random_state", random_state, minimum=0)
    check_non_negative("blur_sigma", blur_sigma, allow_zero=False)
    images, targets = validate_explain_inputs(model, images, targets)
    if np.any(targets < 0):
        raise ValueError(
            "targets contains -1 (any other class); expected the class index whose probability "
            "the curves follow."
        )
    maps = np.asarray(maps)
    if maps.shape != images.shape[:3]:
        raise ValueError(
            f"maps has shape {maps.shape}; expected {images.shape[:3]}, one (H, W) map per image."
        )
    if not np.issubdtype(maps.dtype, np.number) or not np.all(np.isfinite(maps)):
        raise ValueError("maps contains NaN, infinite or non-numeric values; expected finite maps.")
    baselines = _baselines(images, baseline, blur_sigma)

    count, height, width = maps.shape
    ranks = _pixel_ranks(maps.reshape(count, -1), random_state).reshape(count, height, width)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    changed = np.round(fractions * height * width).astype(np.int64)

    rows = count * (steps + 1)
    image_of_row, step_of_row = np.divmod(np.arange(rows), steps + 1)
    deletion = np.empty(rows, dtype=np.float64)
    insertion = np.empty(rows, dtype=np.float64)
    rows_per_call = batch_size // 2
    for start in range(0, rows, rows_per_call):
        chunk = slice(start, start + rows_per_call)
        which = image_of_row[chunk]
        # True where the pixel is among the first `changed` in its map's order.
        selected = (ranks[which] < changed[step_of_row[chunk], None, None])[..., np.newaxis]
        originals, replacements = images[which], baselines[which]
        batch = np.concatenate(
            [np.where(selected, replacements, originals), np.where(selected, originals, replacements)]
        )
        probabilities = np.asarray(model(batch, training=False), dtype=np.float64)
        target_probabilities = probabilities[np.arange(len(batch)), np.tile(targets[which], 2)]
        deletion[chunk], insertion[chunk] = np.split(target_probabilities, 2)

    deletion_curve = deletion.reshape(count, steps + 1)
    insertion_curve = insertion.reshape(count, steps + 1)
    return {
        "fractions": fractions,
        "deletion_curve": deletion_curve,
        "insertion_curve": insertion_curve,
        "deletion_auc": np.trapezoid(deletion_curve, fractions, axis=1),
        "insertion_auc": np.trapezoid(insertion_curve, fractions, axis=1),
    }


def summarize_deletion_insertion(scores: dict) -> dict:
    """Means of a :func:`deletion_insertion_auc` result, ready for JSON.

    Returns ``num_images``, ``mean_deletion_auc``, ``mean_insertion_auc`` (None, never NaN, for
    no images).
    """
    missing = [key for key in ("deletion_auc", "insertion_auc") if key not in scores]
    if missing:
        raise ValueError(
            f"scores lacks the keys {missing}; expected a dict from deletion_insertion_auc."
        )
    summary: dict = {"num_images": len(scores["deletion_auc"])}
    for key in ("deletion_auc", "insertion_auc"):
        values = np.asarray(scores[key], dtype=np.float64)
        mean = float(values.mean()) if len(values) else math.nan
        summary[f"mean_{key}"] = mean if math.isfinite(mean) else None
    return summary


def _baselines(images: np.ndarray, baseline, blur_sigma: float) -> np.ndarray:
    """Baseline image per image (N, H, W, C) float32."""
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(
                f"baseline={baseline!r} is invalid; expected a number in [0, 1] or 'blur'."
            )
        return gaussian_filter(images, sigma=(0, blur_sigma, blur_sigma, 0)).astype(np.float32)
    valid = isinstance(baseline, numbers.Real) and not isinstance(baseline, bool)
    if not valid or not 0.0 <= float(baseline) <= 1.0:
        raise ValueError(f"baseline={baseline!r} is invalid; expected a number in [0, 1] or 'blur'.")
    return np.full_like(images, float(baseline))


def _pixel_ranks(flat_maps: np.ndarray, random_state: int) -> np.ndarray:
    """Rank of every pixel (0 = highest attribution) per row of ``flat_maps`` (N, P), int64."""
    tie_breaker = np.random.default_rng(random_state).permutation(flat_maps.shape[1])
    # lexsort sorts by its last key first: descending attribution, then the fixed random order.
    order = np.stack(
        [np.lexsort((tie_breaker, -row.astype(np.float64))) for row in flat_maps]
    )
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat_maps.shape[1])[np.newaxis], axis=1)
    return ranks
