"""LIME attribution maps (Ribeiro et al. 2016) on the ``lime`` package, with SLIC superpixels.

The method shares its frame (checks, batching, timing, normalisation) with the other attribution
methods through :class:`~pixelflip.attributions.method.AttributionMethod`; build it
directly or as ``make_attribution("lime", ...)`` from :mod:`pixelflip.attributions`.
"""

from __future__ import annotations

import contextlib
import numbers

import numpy as np
from lime import lime_image

from pixelflip.attributions.method import AttributionMethod
from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.config.methods import LimeSettings
from pixelflip.explanation.inputs import predict_probabilities
from pixelflip.explanation.superpixels import superpixels

_DEFAULTS = LimeSettings()


class Lime(AttributionMethod):
    """LIME (Ribeiro et al. 2016) with ``lime.lime_image.LimeImageExplainer``: a weighted linear
    model of the target probability over superpixels switched on and off; each pixel gets its
    superpixel's coefficient.

    LIME is per image by design (its neighbourhood and linear model belong to one image), so
    images are explained one after another; the model sees each image's perturbed copies in
    batches of ``batch_size``.

    Parameters
    ----------
    The defaults of ``num_samples``, ``num_segments`` and ``compactness`` are those of
    :class:`~pixelflip.config.methods.LimeSettings` (section ``attributions.lime``).

    num_samples : int
        Perturbed copies per image.
    num_segments : int
        Approximate number of SLIC superpixels (scikit-image). LIME's default quickshift finds
        only two segments on a 28x28 digit; SLIC gives about 35 on digits and on 128x128 photos.
    compactness : float
        SLIC's balance of colour against space (higher: squarer superpixels).
    hide_color : float or None, default 0.0
        Value of a switched-off superpixel, as ``baseline`` of the deletion metric. None uses
        the superpixel's mean colour (LIME's default), which leaves a uniform superpixel (a
        bright square, a patch of sky) unchanged when it is switched off.
    batch_size : int, default 64
        Perturbed images per model call.
    random_state : int or None, default 0
        Seeds the perturbations; one explainer per ``explain`` call, so the same call gives
        the same maps.
    """


    def __init__(
        self, *, num_samples: int = _DEFAULTS.num_samples,
        num_segments: int = _DEFAULTS.num_segments, compactness: float = _DEFAULTS.compactness,
        hide_color: float | None = 0.0, batch_size: int = 64, random_state: int | None = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, random_state=random_state)
        check_integer("num_samples", num_samples, minimum=2)
        check_integer("num_segments", num_segments, minimum=2)
        check_non_negative("compactness", compactness, allow_zero=False)
        if hide_color is not None and not (
            isinstance(hide_color, numbers.Real) and 0.0 <= hide_color <= 1.0
        ):
            raise ValueError(f"hide_color={hide_color!r} is invalid; expected None or [0, 1].")
        self.num_samples = int(num_samples)
        self.num_segments = int(num_segments)
        self.compactness = float(compactness)
        self.hide_color = hide_color

    @contextlib.contextmanager
    def _call_context(self):
        original_progress_bar = lime_image.tqdm
        # lime 0.2.0.1 draws a progress bar of num_samples steps per image with no switch to turn it
        # off; replacing its module-level tqdm is the only way to keep stage logs readable.
        lime_image.tqdm = lambda iterable, *args, **kwargs: iterable
        try:
            yield
        finally:
            lime_image.tqdm = original_progress_bar

    def _prepare(self, model, images):
        channels = images.shape[-1]
        if channels not in (1, 3):
            raise ValueError(
                f"images have {channels} channels; LIME's segmentation expects 1 (greyscale) or "
                "3 (RGB)."
            )

        def classify(batch: np.ndarray) -> np.ndarray:
            # LIME hands greyscale images back as three equal channels.
            return predict_probabilities(
                model, np.asarray(batch[..., :channels], dtype=np.float32),
                batch_size=self.batch_size,
            )

        return lime_image.LimeImageExplainer(random_state=self.random_state), classify

    def _images_per_call(self, prepared) -> int:
        return 1

    def _segment(self, image: np.ndarray) -> np.ndarray:
        return superpixels(image, num_segments=self.num_segments, compactness=self.compactness)

    def _attribute(self, prepared, images, targets):
        explainer, classify = prepared
        image, target = images[0].astype(np.float64), int(targets[0])
        explanation = explainer.explain_instance(
            image[..., 0] if image.shape[-1] == 1 else image, classify, labels=(target,),
            top_labels=None, hide_color=self.hide_color, num_samples=self.num_samples,
            batch_size=self.batch_size, segmentation_fn=self._segment,
        )
        weights = np.zeros(explanation.segments.max() + 1)
        for segment, weight in explanation.local_exp[target]:
            weights[segment] = weight
        return weights[explanation.segments][np.newaxis]
