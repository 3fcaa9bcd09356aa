"""Polishing: set back every change of a counterfactual that its new prediction does not need.

A gradient search ends with many small changes left in: pixels the proximal step did not quite
shrink to zero, each too small to matter to the prediction but each counted by L0.
:func:`polish_counterfactuals` removes them after the search, for a whole batch at once. Each
round ranks an image's changed pixels by their first-order share of the decision margin,
``|gradient * change|``, and finds by bisection the largest number k such that resetting the k
least useful changes still leaves a valid counterfactual of the same class. A reset pixel is set
to its original value exactly, so the change only ever shrinks: L0, L1 and L2 never grow, and
validity is checked by the model at every step, never assumed.

The validity test is the search's own (:func:`pixelflip.counterfactuals.elastic_net_round.margins`
by ``confidence``), plus one condition: the counterfactual keeps the class it reached, so
"what makes this a 3" stays a 3 after polishing.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pixelflip.config.checks import check_integer
from pixelflip.counterfactuals.elastic_net_round import margins


def polish_counterfactuals(
    logits_of,
    originals: np.ndarray,
    counterfactuals: np.ndarray,
    targets: np.ndarray,
    original_predictions: np.ndarray,
    *,
    confidence: float,
    rounds: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Reset the changes each counterfactual's prediction does not need, for one batch.

    Parameters
    ----------
    logits_of : callable
        Maps (M, H, W, C) float32 tensors to (M, K) logits (or log-probabilities), as
        :func:`pixelflip.counterfactuals.elastic_net.logit_function` returns.
    originals, counterfactuals : float32 arrays of shape (N, H, W, C)
        The images and their counterfactuals; a counterfactual equal to its original (a failed
        search) is returned as it is.
    targets : int array of shape (N,)
        Target class, or -1 for any class but the original prediction.
    original_predictions : int array of shape (N,)
    confidence : float >= 0
        The logit margin a valid counterfactual must clear, as in the search.
    rounds : int >= 1, default 1
        Rank-and-bisect rounds; the ranking is recomputed at the polished point each round.

    Returns
    -------
    (counterfactuals, resets): the polished (N, H, W, C) float32 counterfactuals, where every
    reset value equals the original's bit for bit, and the (N,) int64 count of values reset.
    """
    check_integer("rounds", rounds, minimum=1)
    originals = np.asarray(originals, dtype=np.float32)
    polished = np.array(counterfactuals, dtype=np.float32, copy=True)
    count = len(originals)
    resets = np.zeros(count, dtype=np.int64)
    if count == 0:
        return polished, resets
    num_classes = int(logits_of(tf.constant(polished[:1])).shape[1])
    targets = np.asarray(targets, dtype=np.int64)
    original_predictions = np.asarray(original_predictions, dtype=np.int64)
    targeted = targets >= 0
    key_masks = tf.cast(tf.one_hot(np.where(targeted, targets, original_predictions),
                                   num_classes), tf.bool)
    directions = tf.constant(np.where(targeted, 1.0, -1.0).astype(np.float32))
    reached = None

    def is_valid(points: np.ndarray) -> np.ndarray:
        nonlocal reached
        logits = logits_of(tf.constant(points))
        margin = margins(logits, key_masks, directions).numpy()
        classes = np.argmax(logits.numpy(), axis=1)
        # The first call sees the counterfactuals themselves: the classes they reached.
        reached = classes if reached is None else reached
        return (margin >= confidence) & (margin > 0.0) & (classes == reached)

    flat_originals = originals.reshape(count, -1)
    # Only counterfactuals that are valid now are polished; the others (failed searches, which
    # equal their originals) have nothing the prediction does not need.
    polishable = is_valid(polished)
    for _ in range(rounds):
        flat = polished.reshape(count, -1)
        changed = flat != flat_originals
        num_changed = np.where(polishable, changed.sum(axis=1), 0)
        if not num_changed.any():
            break
        usefulness = np.abs(_margin_gradient(logits_of, polished, key_masks, directions)
                            .reshape(count, -1) * (flat - flat_originals))
        # Unchanged values rank last, so the k first-ranked values are all changed ones.
        ranks = np.argsort(np.argsort(np.where(changed, usefulness, np.inf), axis=1,
                                      kind="stable"), axis=1)
        # Bisection on k, the number of least useful changes reset: k = low is known valid
        # (low = 0 is the counterfactual itself); validity need not be monotone in k, so this
        # finds a large valid k, not always the largest.
        low, high = np.zeros(count, dtype=np.int64), num_changed.astype(np.int64)
        while np.any(low < high):
            middle = (low + high + 1) // 2
            candidates = np.where(ranks < middle[:, None], flat_originals, flat)
            valid = is_valid(candidates.reshape(polished.shape)) & (low < high)
            low = np.where(valid, middle, low)
            high = np.where(valid | (low >= high), high, middle - 1)
        polished = np.where(ranks < low[:, None], flat_originals, flat).reshape(polished.shape)
        resets += low
    return polished, resets


def _margin_gradient(logits_of, points, key_masks, directions) -> np.ndarray:
    """Gradient (N, H, W, C) of each point's margin with respect to its pixels."""
    points = tf.constant(points)
    with tf.GradientTape() as tape:
        tape.watch(points)
        margin = margins(logits_of(points), key_masks, directions)
    return tape.gradient(margin, points).numpy()
