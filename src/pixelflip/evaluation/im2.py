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

import os
from collections.abc import Mapping

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from pixelflip.config.checks import check_integer, check_non_negative, require_classes
from pixelflip.counterfactuals.result import CounterfactualResult, check_result, score_successes


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
    check_result(result)
    check_non_negative("epsilon", epsilon, allow_zero=False)
    check_integer("batch_size", batch_size, minimum=1)

    def scores(valid: np.ndarray) -> np.ndarray:
        reached = result.counterfactual_predictions[valid]
        require_classes(reached, list(autoencoders), problem="autoencoders has no model for",
                        role="successful counterfactuals reach")
        counterfactuals = result.counterfactuals[valid]
        general = _reconstructions(shared_autoencoder, counterfactuals, int(batch_size))
        gaps = np.empty(valid.size)
        for class_index in np.unique(reached).tolist():
            rows = reached == class_index
            specific = _reconstructions(autoencoders[class_index], counterfactuals[rows],
                                        int(batch_size))
            gaps[rows] = np.square(specific - general[rows]).reshape(rows.sum(), -1).sum(axis=1)
        norms = np.abs(counterfactuals.astype(np.float64)).reshape(valid.size, -1).sum(axis=1)
        return gaps / (norms + float(epsilon))

    return score_successes(result, scores)


def _reconstructions(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's float64 reconstructions of ``images``, one batch at a time."""
    expected = tuple(model.inputs[0].shape[1:])
    if expected != images.shape[1:]:
        raise ValueError(f"the autoencoder {model.name!r} takes images of shape {expected}; the "
                         f"counterfactuals have shape {images.shape[1:]}.")
    return np.concatenate([
        np.asarray(model(images[start : start + batch_size], training=False), dtype=np.float64)
        for start in range(0, len(images), batch_size)
    ])
