"""The frame every counterfactual method shares: common settings, their checks, ``repr`` and
``explain``.

A method subclasses :class:`CounterfactualMethod`, checks and stores its own settings, and fills
in :meth:`CounterfactualMethod._search`; ``explain`` checks the inputs, predicts the originals,
times the call and assembles the :class:`~pixelflip.counterfactuals.result.CounterfactualResult`, so
every method reports the same way.
"""

from __future__ import annotations

import time

import numpy as np

from pixelflip.config.checks import check_clip_range, check_non_negative
from pixelflip.counterfactuals.result import CounterfactualResult, build_result
from pixelflip.explanation.inputs import predict_probabilities, validate_explain_inputs
from pixelflip.explanation.method import ExplanationMethod
from pixelflip.explanation.model_access import check_float32_model


class CounterfactualMethod(ExplanationMethod):
    """Base of the counterfactual methods, holding the settings they all have.

    Parameters
    ----------
    confidence : float >= 0
        Margin by which the target must win (or the original prediction lose); each method says
        in which scores.
    clip_min, clip_max : float, clip_min < clip_max
        Pixel range of images and counterfactuals.
    batch_size, random_state
        As for every :class:`~pixelflip.explanation.method.ExplanationMethod`.

    Subclasses implement :meth:`_search`.
    """

    def __init__(
        self, *, confidence: float, clip_min: float, clip_max: float, batch_size: int,
        random_state: int | None,
    ) -> None:
        super().__init__(batch_size=batch_size, random_state=random_state)
        check_non_negative("confidence", confidence, allow_zero=True)
        check_clip_range(clip_min, clip_max)
        self.confidence = float(confidence)
        self.clip_min = float(clip_min)
        self.clip_max = float(clip_max)
        #: Seconds the last ``explain`` spent compiling (0 when it reused a compiled search).
        self.compile_seconds = 0.0

    def explain(self, model, images, targets) -> CounterfactualResult:
        """Search one counterfactual per image (several for a method asked for
        ``num_counterfactuals`` > 1: consecutive rows of the result, their ``sources`` naming
        the image).

        Parameters
        ----------
        model : keras.Model
            Maps (N, H, W, C) float32 images to (N, K) softmax probabilities, computing in
            float32 (see :func:`pixelflip.explanation.model_access.check_float32_model`). A
            method that only queries predictions also takes other models; its class docstring
            says which.
        images : float array of shape (N, H, W, C)
            Pixels in [clip_min, clip_max].
        targets : int array of shape (N,)
            Target class per image, or ``ANY_OTHER`` (-1) for "any class but the original
            prediction". An image already predicted as its target is returned unchanged.

        Returns
        -------
        CounterfactualResult with ``method == self.name``; ``iterations`` counts what the
        method's class docstring says. A failed search returns the original image. Its
        ``seconds`` leave out what the call spent compiling a search for a new model or image
        shape, which ``self.compile_seconds`` holds until the next call.

        Raises
        ------
        ValueError
            If the model is not one the method takes, has layers computing in half precision,
            or if the images or targets are invalid (see
            :func:`pixelflip.explanation.inputs.validate_explain_inputs`).
        """
        started = time.perf_counter()
        self.compile_seconds = 0.0
        check_float32_model(model)
        model = self._model_to_search(model, images)
        images, targets = validate_explain_inputs(
            model, images, targets, clip_min=self.clip_min, clip_max=self.clip_max
        )
        original_probabilities = predict_probabilities(model, images, batch_size=self.batch_size)
        original_predictions = np.argmax(original_probabilities, axis=1).astype(np.int64)
        counterfactuals, iterations, *extra = self._search(
            model, images, targets, original_probabilities, original_predictions
        )
        extra = dict(extra[0]) if extra else {}
        if "sources" in extra:
            # Several counterfactuals per image: rows follow the search's requests, each
            # naming its source image and its own target.
            images = images[extra["sources"]]
            original_probabilities = original_probabilities[extra["sources"]]
            targets = extra.pop("targets")
        # One-off compilation is timed apart: a stage compiles once per model and shape.
        return build_result(
            self.name, model, images, counterfactuals, targets, original_probabilities,
            iterations, started=started + self.compile_seconds, batch_size=self.batch_size,
            **extra,
        )

    def fit(self, images, labels) -> CounterfactualMethod:
        """Show the method real images (the training split) it may draw on; returns ``self``.

        ``images`` (M, H, W, C) and ``labels`` (M,). Only a method that uses references (the
        region method's distractors) keeps them; for the others this does nothing, so a stage
        can fit every method the same way.
        """
        return self

    def _model_to_search(self, model, images):
        """The model as the search will call it; Keras models are taken as they are."""
        return model

    def _search(
        self,
        model,
        images: np.ndarray,
        targets: np.ndarray,
        original_probabilities: np.ndarray,
        original_predictions: np.ndarray,
    ) -> tuple:
        """Counterfactuals (N, H, W, C) in [clip_min, clip_max] and iterations (N,) int64,
        optionally followed by a dict of the result's optional fields (``masks``,
        ``distractor_indices``, ``sources``). A search that returns several counterfactuals per
        image returns one row per counterfactual, with ``sources`` (the image each row explains)
        and ``targets`` (each row's target) in that dict.

        ``images`` and ``targets`` are checked; ``original_probabilities`` (N, K) float32 and
        ``original_predictions`` (N,) int64 are what the model says of the images. An image
        without a counterfactual is returned unchanged.
        """
        raise NotImplementedError
