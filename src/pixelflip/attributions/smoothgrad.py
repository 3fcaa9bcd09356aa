"""SmoothGrad (Smilkov et al. 2017) on tf-keras-vis."""

from __future__ import annotations

import contextlib

import numpy as np
from tf_keras_vis.saliency import Saliency

from pixelflip.attributions.class_activation import target_score
from pixelflip.attributions.method import AttributionMethod
from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.config.methods import SmoothGradSettings

_DEFAULTS = SmoothGradSettings()


class SmoothGrad(AttributionMethod):
    """SmoothGrad (Smilkov et al. 2017): absolute input gradients of the target score averaged
    over noisy copies of the image, then the maximum over colour channels.

    Parameters
    ----------
    The defaults of ``num_samples`` and ``noise_level`` are those of
    :class:`~pixelflip.config.methods.SmoothGradSettings` (section ``attributions.smoothgrad``).

    num_samples : int
        Noisy copies per image (one batched backward pass each).
    noise_level : float
        Standard deviation of the Gaussian noise as a fraction of the image's pixel range.
    batch_size : int, default 16
        Images per pass; tf-keras-vis holds all ``batch_size * num_samples`` noisy copies at once
        (in float64), so keep it small for large images.
    random_state : int or None, default 0
        Seeds the noise. tf-keras-vis draws it from NumPy's global generator, so ``explain``
        seeds that generator and restores its previous state afterwards; the noise of an image
        depends on its position in the call and on ``batch_size``.
    """


    def __init__(
        self, *, num_samples: int = _DEFAULTS.num_samples,
        noise_level: float = _DEFAULTS.noise_level, batch_size: int = 16,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, random_state=random_state)
        check_integer("num_samples", num_samples, minimum=1)
        check_non_negative("noise_level", noise_level, allow_zero=False)
        self.num_samples = int(num_samples)
        self.noise_level = float(noise_level)

    @contextlib.contextmanager
    def _call_context(self):
        saved = np.random.get_state()
        np.random.seed(self.random_state)
        try:
            yield
        finally:
            np.random.set_state(saved)

    def _attribute(self, prepared, images, targets):
        return Saliency(prepared, clone=False)(
            target_score(targets), images, smooth_samples=self.num_samples,
            smooth_noise=self.noise_level, normalize_map=False,
        )
