"""Oracle agreement: does a second, independently trained classifier see the counterfactual's
class too?

A counterfactual changes what the explained model says. If the change is adversarial noise, a
network trained apart (another architecture and seed, the ``oracle`` stage) still sees the
original class; if the change is real content, it sees the new class as well. The share of
valid counterfactuals the oracle assigns to their target tells the two apart.
"""

from __future__ import annotations

import numpy as np

from pixelflip.counterfactuals.result import CounterfactualResult, check_result
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.model_access import as_prediction_model
from pixelflip.explanation.targets import ANY_OTHER


def oracle_agreement(result: CounterfactualResult, oracle, *, batch_size: int) -> dict:
    """Per image of ``result``, what the oracle predicts and whether it agrees.

    Parameters
    ----------
    result : CounterfactualResult
    oracle : keras.Model or object with ``predict(images) -> (N, K) probabilities``
        Over the same K classes as the explained model.
    batch_size : int
        Images per prediction.

    Returns
    -------
    dict of (N,) arrays: ``oracle_prediction`` (int64, the oracle's class for the
    counterfactual), ``oracle_agrees`` (float64: 1.0 when that is the counterfactual's target,
    the class it was searched for, or, for target -1, the class the model now predicts; 0.0 when
    not; NaN for a failed counterfactual, which is the unchanged original) and
    ``oracle_original_agrees`` (float64: 1.0 when the oracle predicts the original image as the
    model did, the baseline the agreement on counterfactuals is read against).
    """
    check_result(result)
    oracle = as_prediction_model(oracle, result.originals, fill_value=0.0)
    counterfactual_classes = _predict(oracle, result.counterfactuals, batch_size)
    original_classes = _predict(oracle, result.originals, batch_size)
    if counterfactual_classes.max(initial=0) >= result.num_classes:
        raise ValueError(f"the oracle predicts class {counterfactual_classes.max()} but the "
                         f"result has {result.num_classes} classes; train the oracle on the same "
                         "data as the explained model.")
    reached = np.where(result.targets == ANY_OTHER, result.counterfactual_predictions,
                       result.targets)
    agrees = np.where(result.success, (counterfactual_classes == reached).astype(np.float64),
                      np.nan)
    return {
        "oracle_prediction": counterfactual_classes,
        "oracle_agrees": agrees,
        "oracle_original_agrees": (original_classes == result.original_predictions).astype(
            np.float64),
    }


def _predict(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    probabilities = predict_probabilities(model, images, batch_size=batch_size)
    return np.argmax(probabilities, axis=1).astype(np.int64)
