"""The frame every attribution method shares: input checks, batching, timing and normalisation.

A method subclasses :class:`AttributionMethod`, checks and stores its own settings, and fills in
``_prepare`` (once per call) and ``_attribute`` (once per batch); ``explain`` returns an
:class:`~pixelflip.attributions.result.AttributionResult`, so every method reports the same way.
The methods themselves live one per module beside this one (``grad_cam``, ``score_cam``,
``smoothgrad``, ``lime``).
"""

from __future__ import annotations

import contextlib
import time
import warnings

import keras
import numpy as np

from pixelflip.attributions.result import AttributionResult
from pixelflip.explanation.inputs import predict_probabilities, validate_explain_inputs
from pixelflip.explanation.method import ExplanationMethod
from pixelflip.explanation.model_access import check_float32_model
from pixelflip.stage.library_logs import without_progress_bars

_SMALLEST_PROBABILITY = 1e-30


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max normalise each (H, W) map of ``maps`` (N, H, W) to [0, 1]; constant maps give 0."""
    maps = np.asarray(maps, dtype=np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    safe_span = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (maps - low) / safe_span, 0.0).astype(np.float32)


def score_model(model: keras.Model) -> keras.Model:
    """Sub-model from the images to pre-softmax scores (N, K): ``"logits"`` or log-probabilities."""
    inputs = model.inputs[0]
    try:
        scores = model.get_layer("logits").output
    except ValueError:
        scores = keras.ops.log(keras.ops.maximum(model.outputs[0], _SMALLEST_PROBABILITY))
    return keras.Model(inputs, scores)


@contextlib.contextmanager
def _quiet_keras():
    """Silence Keras progress bars (Score-CAM calls ``predict``) and tf-keras-vis's warning that
    it feeds a one-element list to a single-input model, which Keras 3 accepts."""
    with without_progress_bars(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        yield


class AttributionMethod(ExplanationMethod):
    """Base of the attribution methods: input checks, batching, timing and normalisation.

    Subclasses fill in ``_attribute``; they
    may override ``_prepare`` (default: the :func:`score_model` of the model),
    ``_images_per_call`` (default: ``batch_size``) and ``_call_context`` (default: nothing).

    Parameters
    ----------
    batch_size : int >= 1
        Images per ``_attribute`` call, unless ``_images_per_call`` says otherwise.
    random_state : int >= 0 or None
        Seed of the method's random choices, for those that make any.
    """

    def explain(self, model, images, targets=None) -> AttributionResult:
        """Attribution maps of ``model``'s score for ``targets`` on ``images``.

        Parameters
        ----------
        model : keras.Model
            Maps (N, H, W, C) float32 images to (N, K) softmax probabilities, computing in
            float32 (see :func:`pixelflip.explanation.model_access.check_float32_model`).
        images : float array of shape (N, H, W, C)
            Pixels in [0, 1].
        targets : int array of shape (N,), optional
            Class in 0..K-1 explained per image (for a counterfactual, the class it reached).
            None explains the model's prediction.

        Returns
        -------
        AttributionResult with ``method == self.name``.

        Raises
        ------
        ValueError
            Images or targets that do not fit the model, a target of -1 (``ANY_OTHER``), or a
            model with layers computing in half precision.
        """
        check_float32_model(model)
        images = np.asarray(images)
        if targets is None and images.ndim == 4 and np.issubdtype(images.dtype, np.floating):
            targets = predict_probabilities(model, images.astype(np.float32)).argmax(axis=1)
        images, targets = validate_explain_inputs(model, images, targets)
        if np.any(targets < 0):
            raise ValueError(
                "targets contains -1 (any other class); an attribution explains one class per "
                "image: pass the class, e.g. the one the counterfactual reached."
            )
        maps = np.empty(images.shape[:3], dtype=np.float32)
        seconds = np.empty(len(images), dtype=np.float64)
        with _quiet_keras(), self._call_context():
            prepared = self._prepare(model, images)
            step = self._images_per_call(prepared)
            for start in range(0, len(images), step):
                batch = slice(start, start + step)
                started = time.perf_counter()
                maps[batch] = normalize_maps(
                    self._attribute(prepared, images[batch], targets[batch])
                )
                seconds[batch] = (time.perf_counter() - started) / len(images[batch])
        return AttributionResult(self.name, maps, targets, seconds)

    def _call_context(self):
        # Entered around the whole call: SmoothGrad seeds NumPy's global generator here, LIME
        # silences its progress bar.
        return contextlib.nullcontext()

    def _prepare(self, model, images):
        return score_model(model)

    def _images_per_call(self, prepared) -> int:
        return self.batch_size

    def _attribute(self, prepared, images, targets) -> np.ndarray:
        raise NotImplementedError
