"""Models that can only predict, made to look like the Keras models the explain helpers read.

A black-box method accepts either a ``keras.Model`` mapping (N, H, W, C) float32 images to (N, K)
probabilities, or any other object with a ``predict(images)`` method returning (N, K)
non-negative scores (probabilities), such as a scikit-learn classifier wrapped to take image
arrays or a remote prediction service. :func:`as_prediction_model` turns the latter into a
:class:`PredictionModel`, which :func:`pixelflip.explanation.inputs.validate_explain_inputs`,
:func:`pixelflip.explanation.inputs.predict_probabilities` and :func:`pixelflip.counterfactuals.result.build_result` use as
they use a Keras model.

Every method explains a Keras model in float32: :func:`check_float32_model` refuses one whose
layers compute in half precision (a model trained with ``train.mixed_precision``), which
:func:`pixelflip.models.loading.load_classifier` loads in float32.
"""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np

from pixelflip.models.loading import reduced_precision_layers


class PredictionModel:
    """What the explain helpers read of a Keras model, for an object that can only ``predict``:
    ``inputs[0].shape``, ``outputs[0].shape`` and ``model(images, training=False)``.

    Parameters
    ----------
    predictor : object with ``predict(images) -> scores``
        Called with (n, H, W, C) float32 images; must return (n, K) finite, non-negative scores
        with K >= 2.
    image_shape : (H, W, C)
        Shape of one image the predictor takes.
    fill_value : float
        Pixel value of the one blank image predicted to learn K, the first time ``outputs`` is
        read.
    """

    def __init__(self, predictor, image_shape: tuple, fill_value: float) -> None:
        self._predictor = predictor
        self._image_shape = tuple(image_shape)
        self._fill_value = fill_value
        self._num_classes: int | None = None
        self.inputs = [SimpleNamespace(shape=(None, *self._image_shape))]

    @property
    def outputs(self) -> list:
        if self._num_classes is None:
            # One blank image tells how many classes the predictor scores.
            blank = np.full((1, *self._image_shape), self._fill_value, dtype=np.float32)
            self._num_classes = self(blank).shape[1]
        return [SimpleNamespace(shape=(None, self._num_classes))]

    def __call__(self, images, training: bool = False) -> np.ndarray:
        """(n, K) float32 scores of ``predictor.predict(images)``; ``training`` is ignored.

        Raises ValueError when the scores are not (n, K) finite non-negative values, K >= 2.
        """
        images = np.asarray(images, dtype=np.float32)
        scores = np.asarray(self._predictor.predict(images), dtype=np.float32)
        if not (
            scores.ndim == 2 and len(scores) == len(images) and scores.shape[1] >= 2
            and np.all(np.isfinite(scores)) and scores.min() >= 0
        ):
            raise ValueError(
                f"model.predict returned an array of shape {scores.shape} for {len(images)} "
                f"images; expected ({len(images)}, K) finite, non-negative class probabilities "
                "with K >= 2."
            )
        return scores


class PredictOnly:
    """A Keras model seen as a black box: it only answers ``predict(images) -> (N, K)
    probabilities``, so a method given it cannot take gradients. For proving that a method is
    black-box (tests) and measuring what that costs (benchmarks)."""

    def __init__(self, model) -> None:
        self._model = model

    def predict(self, images) -> np.ndarray:
        return np.asarray(self._model(images, training=False), dtype=np.float32)


def as_prediction_model(model, images, *, fill_value: float):
    """The model itself if it is a ``keras.Model``, else a :class:`PredictionModel` around it.

    Parameters
    ----------
    model : keras.Model or object with ``predict(images) -> probabilities``
    images : array of shape (N, H, W, C)
        Images the model will be asked about; only their shape is read.
    fill_value : float
        Passed to :class:`PredictionModel` (use the lowest pixel value).

    Raises
    ------
    ValueError
        If ``model`` is neither a keras.Model nor has a callable ``predict``.
    """
    if isinstance(model, keras.Model):
        return model
    if not callable(getattr(model, "predict", None)):
        raise ValueError(
            f"model is a {type(model).__name__} without a predict method; expected a keras.Model "
            "or an object with predict(images) -> (N, K) probabilities."
        )
    return PredictionModel(model, np.shape(images)[1:], fill_value)


def check_float32_model(model) -> None:
    """Refuse a ``keras.Model`` with layers that compute in half precision.

    Explanations are not computed in bfloat16 or float16: gradients and feature maps of half-
    precision layers keep about three significant digits, too few for the logit margins, the
    small pixel changes and the probabilities near 0 and 1 that the methods compare, and
    casting the output to float32 would hide that rather than fix it. Other models (see
    :class:`PredictionModel`) are only asked for scores, which are taken as float32.

    Raises
    ------
    ValueError
        If any layer of ``model`` (nested ones included) computes in bfloat16 or float16; the
        message names the layers' dtype policies and the fix.
    """
    if not isinstance(model, keras.Model):
        return
    layers = reduced_precision_layers(model)
    if layers:
        policies = sorted(set(layers.values()))
        raise ValueError(
            f"model {model.name!r} has {len(layers)} layers with dtype policy "
            f"{' or '.join(policies)} (e.g. {next(iter(layers))!r}); explanations are computed "
            "in float32: load the model with pixelflip.models.load_classifier(path), or convert "
            "it with pixelflip.models.loading.with_compute_dtype(model, 'float32')."
        )
