"""The per-image binary search over c, the weight of the prediction loss, of the elastic-net
search: the rounds around :mod:`pixelflip.counterfactuals.elastic_net_round`.

Each round runs the compiled search for every image still searching. After it, c shrinks
(bisection) for an image that found a valid counterfactual and grows (bisection, or x10 while no
upper bound is known) for one that did not. An image stops searching as soon as a round no
longer pays: once it has a counterfactual, a round that shrinks its best distance by less than
:data:`ROUND_IMPROVEMENT` is its last. Smaller c past that point buys little sparsity (the
polishing step removes what is left) at a whole round of iterations, so stopping there about
halves the iterations of a default search at the same validity.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Relative improvement of an image's best distance below which its binary search stops.
ROUND_IMPROVEMENT = 0.02


def search_trade_off(search_round, originals, targets, original_predictions, extras=(), *,
                     initial_prediction_weight: float, binary_search_steps: int):
    """Binary search over c for one batch.

    ``search_round`` is :func:`~pixelflip.counterfactuals.elastic_net_round.build_search_round`'s
    function; ``originals`` (n, H, W, C) float32, ``targets`` and ``original_predictions`` (n,)
    int; ``extras`` the round's extra inputs (the prototypes of the plausibility terms).
    Returns the counterfactuals (n, H, W, C), the original where none was found, and the
    iterations (n,) int64 spent on each image.
    """
    count = len(originals)
    # Images already predicted as their target need no search: they are their own answer.
    active = (targets < 0) | (targets != original_predictions)
    constants = np.full(count, initial_prediction_weight, dtype=np.float32)
    lower = np.zeros(count, dtype=np.float32)
    upper = np.full(count, np.inf, dtype=np.float32)
    originals_tensor = tf.constant(originals)
    targets_tensor = tf.constant(targets, dtype=tf.int32)
    predictions_tensor = tf.constant(original_predictions, dtype=tf.int32)
    best_distances = tf.fill([count], np.float32(np.inf))
    best_counterfactuals = originals_tensor
    iterations = np.zeros(count, dtype=np.int64)
    for _ in range(binary_search_steps):
        if not active.any():
            break
        previous = best_distances.numpy()
        best_distances, best_counterfactuals, found, used = search_round(
            originals_tensor, targets_tensor, predictions_tensor, tf.constant(constants),
            best_distances, best_counterfactuals, tf.constant(active), *extras)
        found = found.numpy()
        iterations += used.numpy()
        searched = active & ~found
        upper = np.where(active & found, np.minimum(upper, constants), upper)
        lower = np.where(searched, np.maximum(lower, constants), lower)
        constants = np.where(np.isfinite(upper), (lower + upper) / 2,
                             constants * 10).astype(np.float32)
        stalled = np.isfinite(previous) & (
            best_distances.numpy() > previous * (1.0 - ROUND_IMPROVEMENT))
        active &= ~stalled
    valid = np.isfinite(best_distances.numpy())
    counterfactuals = np.where(valid[:, None, None, None], best_counterfactuals.numpy(),
                               originals)
    return counterfactuals, iterations
