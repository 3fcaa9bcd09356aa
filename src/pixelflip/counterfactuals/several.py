"""Several counterfactuals per image: which searches to run, and how different their answers are.

A method asked for ``num_counterfactuals`` k > 1 searches k rows per image in one batch, as
:func:`expand_requests` lays them out: the k best counterfactuals towards different classes. For
"any other class" those are the k classes the model finds most probable after its own answer
("it is a 3; a little change makes it an 8, a 5 or a 9"); for a named target, that target first,
then the most probable others. The method returns them as consecutive rows of its
:class:`~pixelflip.counterfactuals.result.CounterfactualResult`, whose ``sources`` name the image,
and :func:`pairwise_distances` says how different they came out.
"""

from __future__ import annotations

import numpy as np

from pixelflip.explanation.targets import ANY_OTHER


def expand_requests(targets, original_probabilities,
                    num_counterfactuals: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a search for ``num_counterfactuals`` counterfactuals per image.

    Parameters
    ----------
    targets : int array of shape (N,)
        Target class per image, or ``ANY_OTHER`` (-1).
    original_probabilities : float array of shape (N, K)
        The model's probabilities of the original images.
    num_counterfactuals : int, 1 <= k <= K - 1
        There are no more other classes than K - 1.

    Returns
    -------
    (sources, row_targets), int64 of shape (N * k,): the image each row explains (each image's
    k rows consecutive, best first) and the row's target class. With k = 1, the images and
    their own targets.
    """
    targets = np.asarray(targets, dtype=np.int64)
    probabilities = np.asarray(original_probabilities)
    count, num_classes = probabilities.shape
    k = int(num_counterfactuals)
    if k == 1:
        return np.arange(count), targets
    if k > num_classes - 1:
        raise ValueError(f"num_counterfactuals={k} asks for more classes than there are other "
                         f"classes ({num_classes - 1}); lower it to at most {num_classes - 1}.")
    original_predictions = probabilities.argmax(axis=1)
    # Classes by falling probability, the original prediction dropped; a named target first.
    order = np.argsort(-probabilities, axis=1, kind="stable")
    row_targets = np.empty((count, k), dtype=np.int64)
    for row in range(count):
        candidates = [c for c in order[row] if c != original_predictions[row]]
        if targets[row] != ANY_OTHER:
            candidates = [targets[row]] + [c for c in candidates if c != targets[row]]
        row_targets[row] = candidates[:k]
    return np.repeat(np.arange(count), k), row_targets.reshape(-1)


def pairwise_distances(result) -> np.ndarray:
    """Mean L1 distance (N,) float64 between each counterfactual and the other valid
    counterfactuals of the same image (``result.sources``); NaN for a failed one, or one with no
    valid sibling."""
    distances = np.full(len(result), np.nan)
    flat = result.counterfactuals.reshape(len(result), -1).astype(np.float64)
    for source in np.unique(result.sources):
        rows = np.flatnonzero((result.sources == source) & result.success)
        if len(rows) < 2:
            continue
        gaps = np.abs(flat[rows, None, :] - flat[None, rows, :]).sum(axis=2)
        distances[rows] = gaps.sum(axis=1) / (len(rows) - 1)
    return distances
