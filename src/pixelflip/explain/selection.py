"""Which test images the explanation stages explain: a seeded sample, and the model's mistakes.

The ``counterfactuals`` and ``attributions`` stages call :func:`explained_sets` with the same
model, test split and params, so both explain the same images without reading each other's
outputs (and a change to one method's settings does not rerun the other stage).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pixelflip.checks import check_integer

# "sampled": the images chosen by the seed, explained towards counterfactuals.target;
# "misclassified": the model's mistakes, explained towards their true label.
IMAGE_SETS = ("sampled", "misclassified")


def choose_images(available: int, wanted: int, seed: int) -> np.ndarray:
    """Indices of ``min(wanted, available)`` of ``available`` images drawn by ``seed``, sorted.

    Returns an int64 array; sorted so that tables read in test-set order.
    """
    check_integer("available", available, minimum=0)
    check_integer("wanted", wanted, minimum=0)
    count = min(wanted, available)
    chosen = np.random.default_rng(seed).choice(available, size=count, replace=False)
    return np.sort(chosen).astype(np.int64)


def explained_sets(
    predictions, labels, *, num_images: int, misclassified: int, seed: int
) -> dict[str, np.ndarray]:
    """The test images to explain, by set name (``IMAGE_SETS``).

    Parameters
    ----------
    predictions, labels : int arrays of shape (N,)
        The model's predicted class and the true class of every test image.
    num_images : int >= 1
        Size of the ``sampled`` set (all N if fewer), drawn by ``seed`` from every test image.
    misclassified : int >= 0
        Size of the ``misclassified`` set: that many of the images whose prediction differs from
        the label (all if fewer), drawn by ``seed``; 0 leaves the set empty.
    seed : int

    Returns
    -------
    dict with an int64 array of sorted test indices per set name.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise ValueError(f"predictions has shape {predictions.shape} and labels {labels.shape}; "
                         "expected two arrays of shape (N,), one entry per test image.")
    check_integer("num_images", num_images, minimum=1)
    check_integer("misclassified", misclassified, minimum=0)
    wrong = np.flatnonzero(predictions != labels)
    return {
        "sampled": choose_images(len(labels), num_images, seed),
        "misclassified": wrong[choose_images(len(wrong), misclassified, seed)],
    }


@dataclasses.dataclass(frozen=True)
class ExplainedSet:
    """One set of test images to explain, with what the model says of them.

    ``indices`` (N,) int64 into the test split; ``images`` (N, H, W, C) float32 in [0, 1];
    ``labels`` (N,) int64 true classes; ``probabilities`` (N, K) float32 model outputs.
    """

    name: str
    indices: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray


def select_test_images(
    model, test_images, test_labels, *, num_images: int, misclassified: int, seed: int,
    batch_size: int,
) -> list[ExplainedSet]:
    """The :func:`explained_sets` of ``model`` on the test split, images loaded, in IMAGE_SETS order.

    ``test_images`` (M, H, W, C) uint8 (a memory map is fine: only the chosen images and one
    batch at a time are read) and ``test_labels`` (M,). An empty set has zero-length arrays.
    """
    from pixelflip.explain.result import predict_probabilities

    test_labels = np.asarray(test_labels, dtype=np.int64)
    probabilities = np.concatenate([
        predict_probabilities(model, _to_unit(test_images[start:start + batch_size]),
                              batch_size=batch_size)
        for start in range(0, len(test_images), batch_size)
    ])
    sets = explained_sets(probabilities.argmax(axis=1), test_labels, num_images=num_images,
                          misclassified=misclassified, seed=seed)
    return [ExplainedSet(name, indices, _to_unit(test_images[indices]), test_labels[indices],
                         probabilities[indices]) for name, indices in sets.items()]


def _to_unit(images) -> np.ndarray:
    return np.asarray(images, dtype=np.float32) / 255.0
