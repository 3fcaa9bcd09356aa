"""Plausibility of counterfactuals: do they look like real images of the class they reach?

Two measures, both lower-is-better and NaN for a failed counterfactual.
:func:`nearest_class_distance_ratio` (here) divides the counterfactual's L2 distance to its
nearest training image of its new class by the original's distance to that class (below 1: it
moved towards real images of the new class; about 1 or above: an adversarial rather than a
semantic change). :func:`pixelflip.evaluation.im1.im1_scores` is IM1, which compares class
autoencoders' reconstruction errors instead.
Training images may be uint8 (divided by 255 one chunk at a time, so a memory-mapped ``.npy``
split is never loaded whole) or floating point in [0, 1]; :func:`check_training_set` and
:func:`to_unit_float` handle them for both measures.
"""

from __future__ import annotations

import numpy as np

from pixelflip.config.checks import check_integer, require_classes
from pixelflip.counterfactuals.result import CounterfactualResult, check_result, score_successes
from pixelflip.evaluation.training_set import check_training_set, to_unit_float


def nearest_class_distance_ratio(
    result: CounterfactualResult, train_images, train_labels, *, batch_size: int = 512
) -> np.ndarray:
    """Distance of each counterfactual to real images of its new class, relative to the original.

    For image i with counterfactual class ``c = result.counterfactual_predictions[i]``::

        ratio[i] = min_j ||cf_i - train_j|| / min_j ||original_i - train_j||,  train_labels[j] == c

    with Euclidean distances over all pixels and channels in [0, 1] units. Distances are computed
    as ``||a||² + ||b||² - 2 a·b`` in float64, one chunk of ``batch_size`` training images at a
    time, so memory stays at one chunk whatever the size of the training set.

    Parameters
    ----------
    result : CounterfactualResult
        N counterfactuals of images of shape (H, W, C).
    train_images : array of shape (M, H, W, C)
        uint8 pixels, or floating-point pixels in [0, 1]; a memory map is read chunk by chunk.
    train_labels : int array of shape (M,)
        Class index of each training image.
    batch_size : int >= 1, default 512
        Training images per chunk.

    Returns
    -------
    float64 array of shape (N,)
        The ratio per image; NaN where the counterfactual failed, or where the original is itself
        at distance 0 from a training image of the new class (the ratio is then undefined).
        Raises ValueError on shapes or labels that do not fit, or when a successful
        counterfactual reaches a class without training images.
    """
    check_result(result)
    train_images, train_labels = check_training_set(
        train_images, train_labels, image_shape=result.originals.shape[1:]
    )
    check_integer("batch_size", batch_size, minimum=1)

    def ratios(valid: np.ndarray) -> np.ndarray:
        classes = result.counterfactual_predictions[valid]
        require_classes(
            classes, np.unique(train_labels).tolist(),
            problem="train_labels has no image of", role="successful counterfactuals reach",
        )
        # Counterfactuals and originals share one query matrix, so each training chunk is read
        # once.
        queries = np.concatenate([result.counterfactuals[valid], result.originals[valid]])
        queries = queries.reshape(len(queries), -1).astype(np.float64)
        query_classes = np.concatenate([classes, classes])
        distances = np.sqrt(
            _nearest_same_class_squared_distances(
                queries, query_classes, train_images, train_labels, batch_size=int(batch_size)
            )
        )
        counterfactual_distances, original_distances = np.split(distances, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                original_distances > 0, counterfactual_distances / original_distances, np.nan
            )

    return score_successes(result, ratios)


def _nearest_same_class_squared_distances(
    queries: np.ndarray,
    query_classes: np.ndarray,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    *,
    batch_size: int,
) -> np.ndarray:
    """Smallest squared L2 distance of each query row to a training image of the query's class."""
    query_norms = np.einsum("ij,ij->i", queries, queries)
    nearest = np.full(len(queries), np.inf)
    for start in range(0, len(train_images), batch_size):
        labels = train_labels[start : start + batch_size]
        if not np.isin(labels, query_classes).any():
            continue
        chunk = to_unit_float(train_images[start : start + batch_size], np.float64)
        chunk = chunk.reshape(len(chunk), -1)
        for class_index in np.intersect1d(labels, query_classes).tolist():
            rows = np.flatnonzero(query_classes == class_index)
            members = chunk[labels == class_index]
            squared = (
                query_norms[rows, None]
                + np.einsum("ij,ij->i", members, members)[None, :]
                - 2.0 * (queries[rows] @ members.T)
            )
            nearest[rows] = np.minimum(nearest[rows], squared.min(axis=1))
    # Rounding can leave an identical pair a hair below zero.
    return np.maximum(nearest, 0.0)
