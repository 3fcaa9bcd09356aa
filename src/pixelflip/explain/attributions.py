"""Batched attribution maps: which pixels made the model score the target class.

Every method is configured once and called as ``method.explain(model, images, targets)``; it
returns an :class:`AttributionResult`, which :mod:`pixelflip.explain.attribution_metrics` scores.
Grad-CAM, Score-CAM and SmoothGrad (here) run on tf-keras-vis (0.8.7, its latest release, works
with Keras 3 and TensorFlow 2.21), LIME (:mod:`pixelflip.explain.lime_attribution`) on the
``lime`` package; their shared frame is :mod:`pixelflip.explain.attribution_method`. All explain
the pre-softmax scores (:func:`score_model`), so Score-CAM's own softmax turns them back into
probabilities. :func:`make_attribution` builds any of them by name.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.scorecam import Scorecam

from pixelflip.explain.attribution_method import (
    AttributionMethod,
    AttributionResult,
    normalize_maps,
    score_model,
)
from pixelflip.explain.checks import check_integer, check_non_negative
from pixelflip.explain.lime_attribution import Lime
from pixelflip.models.backbones import feature_block_names

__all__ = [
    "ATTRIBUTION_METHODS",
    "AttributionMethod",
    "AttributionResult",
    "GradCAM",
    "Lime",
    "ScoreCAM",
    "SmoothGrad",
    "make_attribution",
    "normalize_maps",
    "score_model",
]

ATTRIBUTION_METHODS = ("grad_cam", "score_cam", "smoothgrad", "lime")


def _target_score(targets: np.ndarray):
    """Score function for tf-keras-vis: the output column of each image's own target, (N,).

    One gather instead of tf-keras-vis's CategoricalScore, which slices image by image.
    """
    indices = tf.constant(targets, dtype=tf.int64)
    return lambda outputs: tf.gather(outputs, indices, axis=1, batch_dims=1)


class _ClassActivationMap(AttributionMethod):
    """Grad-CAM and Score-CAM: weighted sums of the activation maps of one feature layer."""

    def __init__(self, *, layer_name: str | None, batch_size: int, random_state: int | None):
        super().__init__(batch_size=batch_size, random_state=random_state)
        if layer_name is not None and not isinstance(layer_name, str):
            raise ValueError(f"layer_name={layer_name!r} is invalid; expected a layer name.")
        self.layer_name = layer_name

    def _prepare(self, model, images):
        layer_name = self.layer_name
        if layer_name is None:
            blocks = feature_block_names(model)
            if not blocks:
                raise ValueError(
                    f"model {model.name!r} has no feature block layers named block1, block2, ...; "
                    "pass layer_name, the layer whose activations the map weighs."
                )
            layer_name = blocks[-1]
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            raise ValueError(
                f"layer_name={layer_name!r} is not a layer of model {model.name!r}; expected the "
                "name of a convolutional feature layer such as 'block2'."
            ) from None
        if len(layer.output.shape) != 4:
            raise ValueError(
                f"layer {layer_name!r} outputs shape {tuple(layer.output.shape)}; expected "
                "(N, h, w, channels) feature maps."
            )
        return score_model(model), layer_name, int(layer.output.shape[-1])

    @staticmethod
    def _call_keywords(prepared) -> dict:
        # Without seek_penultimate_conv_layer=False tf-keras-vis would step back from a pooling
        # layer such as block2 to the convolution before it.
        return {"penultimate_layer": prepared[1], "seek_penultimate_conv_layer": False,
                "normalize_cam": False}


class GradCAM(_ClassActivationMap):
    """Grad-CAM (Selvaraju et al. 2017): feature maps weighted by their mean gradient, ReLU'd.

    Parameters
    ----------
    layer_name : str or None, default None
        Layer whose activations (N, h, w, channels) are weighed; None takes the last feature block
        (``block{i}``). The map is resized to the image bilinearly.
    batch_size : int, default 64
        Images per forward and backward pass.
    random_state : int or None, default 0
        Accepted for the interface shared by all methods; Grad-CAM makes no random choices.
    """

    name = "grad_cam"

    def __init__(
        self, *, layer_name: str | None = None, batch_size: int = 64, random_state: int | None = 0
    ) -> None:
        super().__init__(layer_name=layer_name, batch_size=batch_size, random_state=random_state)

    def _attribute(self, prepared, images, targets):
        return Gradcam(prepared[0], clone=False)(
            _target_score(targets), images, **self._call_keywords(prepared)
        )


class ScoreCAM(_ClassActivationMap):
    """Score-CAM (Wang et al. 2020): each channel weighted by the target probability of the
    image masked by that channel's upsampled, normalised activation map.

    It costs one forward pass per image and channel of ``layer_name``; all channels are used
    (tf-keras-vis's ``max_N`` shortcut picks channels across the whole batch, which would make
    an image's map depend on the other images in its batch).

    Parameters
    ----------
    layer_name : str or None, default None
        As for :class:`GradCAM`.
    batch_size : int, default 128
        Masked images per forward pass; each call takes ``max(1, batch_size // channels)`` images.
    random_state : int or None, default 0
        Accepted for the shared interface; Score-CAM makes no random choices.
    """

    name = "score_cam"

    def __init__(
        self, *, layer_name: str | None = None, batch_size: int = 128, random_state: int | None = 0
    ) -> None:
        super().__init__(layer_name=layer_name, batch_size=batch_size, random_state=random_state)

    def _images_per_call(self, prepared) -> int:
        return max(1, self.batch_size // prepared[2])

    def _attribute(self, prepared, images, targets):
        return Scorecam(prepared[0], clone=False)(
            _target_score(targets), images, batch_size=self.batch_size,
            **self._call_keywords(prepared),
        )


class SmoothGrad(AttributionMethod):
    """SmoothGrad (Smilkov et al. 2017): absolute input gradients of the target score averaged
    over noisy copies of the image, then the maximum over colour channels.

    Parameters
    ----------
    num_samples : int, default 25
        Noisy copies per image (one batched backward pass each).
    noise_level : float, default 0.2
        Standard deviation of the Gaussian noise as a fraction of the image's pixel range.
    batch_size : int, default 16
        Images per pass; tf-keras-vis holds all ``batch_size * num_samples`` noisy copies at once
        (in float64), so keep it small for large images.
    random_state : int or None, default 0
        Seeds the noise. tf-keras-vis draws it from NumPy's global generator, so ``explain``
        seeds that generator and restores its previous state afterwards; the noise of an image
        depends on its position in the call and on ``batch_size``.
    """

    name = "smoothgrad"

    def __init__(
        self, *, num_samples: int = 25, noise_level: float = 0.2, batch_size: int = 16,
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
            _target_score(targets), images, smooth_samples=self.num_samples,
            smooth_noise=self.noise_level, normalize_map=False,
        )


_METHOD_CLASSES = {cls.name: cls for cls in (GradCAM, ScoreCAM, SmoothGrad, Lime)}


def make_attribution(name: str, **options) -> AttributionMethod:
    """The attribution method called ``name`` (one of ``ATTRIBUTION_METHODS``) with ``options``.

    Raises ValueError for an unknown name or an option the method does not take.
    """
    if name not in _METHOD_CLASSES:
        raise ValueError(
            f"attribution method {name!r} is unknown; allowed: {list(ATTRIBUTION_METHODS)}."
        )
    method_class = _METHOD_CLASSES[name]
    try:
        return method_class(**options)
    except TypeError as error:
        raise ValueError(
            f"bad options for attribution method {name!r}: {error}; see {method_class.__name__}."
        ) from None
