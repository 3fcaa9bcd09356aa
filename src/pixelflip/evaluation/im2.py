"""IM2 of Van Looveren & Klaise (2019): does a counterfactual look like its new class as much as
like images in general?

``IM2 = ||AE_t(cf) - AE(cf)||² / (||cf||_1 + epsilon)``: ``AE_t`` is the autoencoder of the class
the counterfactual reaches (one of the ``autoencoders`` stage's per-class models) and ``AE`` the
one trained on every class. When the new class's autoencoder reconstructs the counterfactual as
the all-class one does, the counterfactual lies where real images of that class lie. Lower is
more plausible; unlike IM1 it does not involve the original class. The L1 norm of the
counterfactual makes scores of light and dark images comparable. NaN for a failed
counterfactual.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from pixelflip.config.checks import require_classes
from pixelflip.counterfactuals.result import CounterfactualResult, score_successes
from pixelflip.evaluation.im1 import check_score_inputs, reconstructions


def im2_scores(
    result: CounterfactualResult,
    autoencoders: Mapping[int, keras.Model],
    shared_autoencoder: keras.Model,
    *,
    epsilon: float = 1e-10,
    batch_size: int = 256,
) -> np.ndarray:
    """IM2 of each counterfactual (Van Looveren & Klaise, 2019); lower is more plausible.

    Parameters
    ----------
    result : CounterfactualResult
    autoencoders : mapping from class index to keras.Model
        The per-class autoencoders (:func:`pixelflip.evaluation.autoencoders.
        train_class_autoencoders`); needs every class a successful counterfactual reaches.
    shared_autoencoder : keras.Model
        The autoencoder trained on every class (:func:`pixelflip.evaluation.autoencoders.
        train_shared_autoencoder`).
    epsilon : float > 0, default 1e-10
    batch_size : int >= 1, default 256

    Returns
    -------
    float64 array of shape (N,), NaN where the counterfactual failed.
    """
    check_score_inputs(result, autoencoders, epsilon=epsilon, batch_size=batch_size)

    def scores(valid: np.ndarray) -> np.ndarray:
        reached = result.counterfactual_predictions[valid]
        require_classes(reached, list(autoencoders), problem="autoencoders has no model for",
                        role="successful counterfactuals reach")
        counterfactuals = result.counterfactuals[valid]
        general = reconstructions(shared_autoencoder, counterfactuals, int(batch_size),
                                  owner="every class")
        gaps = np.empty(valid.size)
        for class_index in np.unique(reached).tolist():
            rows = reached == class_index
            specific = reconstructions(autoencoders[class_index], counterfactuals[rows],
                                       int(batch_size), owner=f"class {class_index}")
            gaps[rows] = np.square(specific - general[rows]).reshape(rows.sum(), -1).sum(axis=1)
        norms = np.abs(counterfactuals.astype(np.float64)).reshape(valid.size, -1).sum(axis=1)
        return gaps / (norms + float(epsilon))

    return score_successes(result, scores)
