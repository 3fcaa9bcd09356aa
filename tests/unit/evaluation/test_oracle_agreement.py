"""Oracle agreement against a direct re-prediction of the counterfactuals by the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from pixelflip.counterfactuals.result import CounterfactualResult
from pixelflip.evaluation.oracle_agreement import oracle_agreement
from pixelflip.explanation.targets import ANY_OTHER


class BrightnessOracle:
    """Predict-only oracle over 3 classes: class = how bright the image is (thirds of [0, 1])."""

    def predict(self, images):
        classes = np.minimum((np.asarray(images).mean(axis=(1, 2, 3)) * 3).astype(int), 2)
        return np.eye(3, dtype=np.float32)[classes] * 0.97 + 0.01


def brightness_result() -> CounterfactualResult:
    """Five 4x4 images; the explained model's answers are given, not the oracle's."""
    originals = np.full((5, 4, 4, 1), 0.1, dtype=np.float32)
    counterfactuals = originals.copy()
    counterfactuals[0] = 0.5   # oracle: class 1, the target
    counterfactuals[1] = 0.2   # oracle: still class 0, not the target 1: noise for the oracle
    counterfactuals[2] = 0.9   # target -1, the model reached class 2; oracle: 2
    counterfactuals[3] = 0.5   # target -1, the model reached class 2; oracle: 1
    # image 4: the search failed, the counterfactual is the original
    probabilities = np.eye(3, dtype=np.float32)[[0, 0, 0, 0, 0]] * 0.97 + 0.01
    reached = np.eye(3, dtype=np.float32)[[1, 1, 2, 2, 0]] * 0.97 + 0.01
    return CounterfactualResult(
        method="by_hand", originals=originals, counterfactuals=counterfactuals,
        perturbations=counterfactuals - originals,
        targets=np.array([1, 1, ANY_OTHER, ANY_OTHER, 2]),
        original_predictions=np.zeros(5, dtype=int), original_probabilities=probabilities,
        counterfactual_predictions=np.array([1, 1, 2, 2, 0]),
        counterfactual_probabilities=reached,
        success=np.array([True, True, True, True, False]),
        iterations=np.ones(5, dtype=int), seconds=np.ones(5))


def test_agreement_is_the_oracles_own_prediction_of_each_counterfactual():
    result, oracle = brightness_result(), BrightnessOracle()
    scores = oracle_agreement(result, oracle, batch_size=2)
    direct = oracle.predict(result.counterfactuals).argmax(axis=1)
    np.testing.assert_array_equal(scores["oracle_prediction"], direct)
    # Targeted: the target; "any other": the class the model reached; failed: no score.
    np.testing.assert_array_equal(scores["oracle_agrees"][:4], [1.0, 0.0, 1.0, 0.0])
    assert np.isnan(scores["oracle_agrees"][4])
    # On the originals (all dark) the oracle says class 0, as the model did.
    np.testing.assert_array_equal(scores["oracle_original_agrees"], np.ones(5))


def test_a_keras_oracle_gives_the_same_answer_as_its_predict_only_twin():
    import keras

    inputs = keras.Input(shape=(4, 4, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    # Scores 0, 30m - 10, 60m - 30 of the mean m: class 0 below 1/3, 2 above 2/3, as above.
    logits = keras.layers.Dense(3, name="logits")(mean)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    model.get_layer("logits").set_weights([np.array([[0.0, 30.0, 60.0]], np.float32),
                                           np.array([0.0, -10.0, -30.0], np.float32)])
    result = brightness_result()
    keras_scores = oracle_agreement(result, model, batch_size=4)
    np.testing.assert_array_equal(keras_scores["oracle_agrees"][:4], [1.0, 0.0, 1.0, 0.0])


def test_an_oracle_over_other_classes_is_refused():
    class FourClasses:
        def predict(self, images):
            return np.tile(np.array([0.1, 0.1, 0.1, 0.7], np.float32), (len(images), 1))

    with pytest.raises(ValueError, match="same data"):
        oracle_agreement(brightness_result(), FourClasses(), batch_size=8)
