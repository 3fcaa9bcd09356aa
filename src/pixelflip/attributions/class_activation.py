"""What Grad-CAM and Score-CAM share: the feature layer whose activation maps they weigh, and
the per-image target score tf-keras-vis differentiates or evaluates."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pixelflip.attributions.method import AttributionMethod, score_model
from pixelflip.models.backbones import feature_block_names


def target_score(targets: np.ndarray):
    """Score function for tf-keras-vis: the output column of each image's own target, (N,).

    One gather instead of tf-keras-vis's CategoricalScore, which slices image by image.
    """
    indices = tf.constant(targets, dtype=tf.int64)
    return lambda outputs: tf.gather(outputs, indices, axis=1, batch_dims=1)


class ClassActivationMap(AttributionMethod):
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
