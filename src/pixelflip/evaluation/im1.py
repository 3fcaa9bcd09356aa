"""IM1 of Van Looveren & Klaise (2019, "Interpretable Counterfactual Explanations Guided by
Prototypes"): is a counterfactual better explained by its new class than by its old one?

:func:`im1_scores` compares the reconstruction error of a counterfactual under an autoencoder of
the class it reaches with that under one of the class it comes from, using autoencoders from
:func:`pixelflip.evaluation.autoencoders.train_class_autoencoders`. Lower is more plausible; NaN
for a failed counterfactual. The training set is given as for
:func:`pixelflip.evaluation.plausibility.nearest_class_distance_ratio`: uint8 pixels, converted one
batch at a time, or floating point in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from pixelflip.config.checks import check_integer, check_non_negative, require_classes
from pixelflip.counterfactuals.result import CounterfactualResult, check_result, score_successes


def im1_scores(
    result: CounterfactualResult,
    autoencoders: Mapping[int, keras.Model],
    *,
    epsilon: float = 1e-10,
    batch_size: int = 256,
) -> np.ndarray:
    """IM1 of each counterfactual (Van Looveren & Klaise, 2019); lower is more plausible.

    ``IM1 = ||cf - AE_t(cf)||² / (||cf - AE_o(cf)||² + epsilon)``, with ``AE_t`` the autoencoder
    of the class the counterfactual is predicted as and ``AE_o`` that of the original prediction,
    squared errors summed over all pixels and channels. Below 1, the counterfactual is better
    explained by its new class than by its old one.

    Parameters
    ----------
    result : CounterfactualResult
    autoencoders : mapping from class index to keras.Model
        As returned by :func:`train_class_autoencoders`; needs every class that a successful
        counterfactual comes from or reaches, each taking images of the result's shape.
    epsilon : float > 0, default 1e-10
    batch_size : int >= 1, default 256

    Returns
    -------
    float64 array of shape (N,), NaN where the counterfactual failed.
    """
    check_score_inputs(result, autoencoders, epsilon=epsilon, batch_size=batch_size)

    def scores(valid: np.ndarray) -> np.ndarray:
        reached = result.counterfactual_predictions[valid]
        origins = result.original_predictions[valid]
        require_classes(
            np.concatenate([reached, origins]), list(autoencoders),
            problem="autoencoders has no model for",
            role="successful counterfactuals leave or reach",
        )
        counterfactuals = result.counterfactuals[valid]
        reached_errors = np.empty(valid.size)
        origin_errors = np.empty(valid.size)
        for class_index in np.union1d(reached, origins).tolist():
            model = autoencoders[class_index]
            # Each class's autoencoder runs once, on exactly the counterfactuals that need it.
            rows = (reached == class_index) | (origins == class_index)
            errors = np.full(valid.size, np.nan)
            errors[rows] = _reconstruction_errors(model, counterfactuals[rows], int(batch_size),
                                                  owner=f"class {class_index}")
            reached_errors = np.where(reached == class_index, errors, reached_errors)
            origin_errors = np.where(origins == class_index, errors, origin_errors)
        return reached_errors / (origin_errors + float(epsilon))

    return score_successes(result, scores)


def check_score_inputs(result, autoencoders, *, epsilon: float, batch_size: int) -> None:
    """The checks IM1 and IM2 share: a result, a dict of class autoencoders, epsilon > 0 and a
    batch size >= 1; ValueError naming what is wrong."""
    check_result(result)
    if not isinstance(autoencoders, Mapping):
        raise ValueError(
            f"autoencoders is a {type(autoencoders).__name__}; expected a dict from class index "
            "to keras.Model, as train_class_autoencoders returns."
        )
    check_non_negative("epsilon", epsilon, allow_zero=False)
    check_integer("batch_size", batch_size, minimum=1)


def reconstructions(model: keras.Model, images: np.ndarray, batch_size: int, *,
                    owner: str) -> np.ndarray:
    """The autoencoder's float64 reconstructions of ``images``, one batch at a time; ValueError
    naming ``owner`` (whose autoencoder it is) when it takes images of another shape."""
    expected = tuple(model.inputs[0].shape[1:])
    if expected != images.shape[1:]:
        raise ValueError(f"the autoencoder of {owner} takes images of shape {expected}; the "
                         f"counterfactuals have shape {images.shape[1:]}.")
    return np.concatenate([
        np.asarray(model(images[start : start + batch_size], training=False), dtype=np.float64)
        for start in range(0, len(images), batch_size)
    ])


def _reconstruction_errors(model: keras.Model, images: np.ndarray, batch_size: int, *,
                           owner: str) -> np.ndarray:
    """Squared reconstruction error (n,) float64 of each image, summed over pixels and channels."""
    difference = images - reconstructions(model, images, batch_size, owner=owner)
    return np.square(difference).reshape(len(images), -1).sum(axis=1)
