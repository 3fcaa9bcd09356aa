"""Attention modules as serializable Keras 3 layers, and their insertion into a trained backbone.

Every layer here is registered under the ``pixelflip`` package, so a model that contains one
loads with ``keras.saving.load_model(path, safe_mode=True)`` once this module is imported.
"""

from __future__ import annotations

import numbers
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from pixelflip.models.backbones import feature_block_names  # noqa: E402


def _validate_positive_int(value: int, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{argument}={value!r} is invalid; expected an integer >= 1.")
    return int(value)


def _channels_of(input_shape: tuple, layer_name: str) -> int:
    if len(input_shape) != 4 or input_shape[-1] is None:
        raise ValueError(
            f"Layer {layer_name!r} received input_shape={tuple(input_shape)!r}; expected "
            "(batch, height, width, channels) with a known channel count."
        )
    return int(input_shape[-1])


@keras.saving.register_keras_serializable(package="pixelflip")
class _ChannelMLP(keras.layers.Layer):
    """Bottleneck MLP C -> max(1, C // r) -> C shared by the channel-attention modules.

    The hidden width never drops to zero, so a block with fewer channels than the reduction
    ratio still gets one hidden unit instead of failing.
    """

    def __init__(self, reduction_ratio: int, output_activation: str | None, **kwargs):
        super().__init__(**kwargs)
        self.reduction_ratio = reduction_ratio
        self.output_activation = output_activation

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden_units = max(1, channels // self.reduction_ratio)
        # Sublayers are created and built here so that their weights exist before the first call,
        # which is what loading a saved model relies on.
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")
        self.projection = keras.layers.Dense(
            channels, activation=self.output_activation, name="projection"
        )
        self.hidden.build((None, channels))
        self.projection.build((None, hidden_units))

    def call(self, inputs):
        return self.projection(self.hidden(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"reduction_ratio": self.reduction_ratio, "output_activation": self.output_activation}
        )
        return config


class _AttentionLayer(keras.layers.Layer):
    """Shared by the attention modules: a validated reduction ratio and a shape-preserving call."""

    def __init__(self, reduction_ratio: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.reduction_ratio = _validate_positive_int(reduction_ratio, "reduction_ratio")

    def _ensure_built(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if not self.built:
            self.build(tuple(inputs.shape))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"reduction_ratio": self.reduction_ratio})
        return config


@keras.saving.register_keras_serializable(package="pixelflip")
class SqueezeExcitation(_AttentionLayer):
    """Squeeze-and-Excitation channel attention (Hu et al., 2018).

    Global average pooling squeezes each channel to one number, a bottleneck MLP
    (C -> C / r with ReLU -> C with sigmoid) turns those into per-channel factors in [0, 1],
    and the input channels are scaled by them.

    Input and output: (N, H, W, C) float tensors of the same shape.
    """

    def build(self, input_shape):
        channels = _channels_of(input_shape, self.name)
        self.channel_mlp = _ChannelMLP(self.reduction_ratio, "sigmoid", name="channel_mlp")
        self.channel_mlp.build((None, channels))

    def channel_weights(self, inputs):
        """Per-channel scaling factors, shape (N, C), each in [0, 1]."""
        inputs = self._ensure_built(inputs)
        return self.channel_mlp(ops.mean(inputs, axis=(1, 2)))

    def call(self, inputs):
        factors = self.channel_weights(inputs)
        return inputs * factors[:, None, None, :]


@keras.saving.register_keras_serializable(package="pixelflip")
class CBAM(_AttentionLayer):
    """Convolutional Block Attention Module (Woo et al., 2018).

    Channel attention first: one MLP shared by the average- and max-pooled channel descriptors,
    summed and passed through a sigmoid, scales the channels. Spatial attention second: the
    channel-wise mean and max maps of the refined features are concatenated and a
    ``kernel_size`` x ``kernel_size`` convolution with a sigmoid gives one weight per pixel.

    Input and output: (N, H, W, C) float tensors of the same shape.
    """

    def __init__(self, reduction_ratio: int = 8, kernel_size: int = 7, **kwargs):
        super().__init__(reduction_ratio=reduction_ratio, **kwargs)
        self.kernel_size = _validate_positive_int(kernel_size, "kernel_size")

    def build(self, input_shape):
        channels = _channels_of(input_shape, self.name)
        # No activation inside the MLP output: the sigmoid is applied to the sum of both paths.
        self.channel_mlp = _ChannelMLP(self.reduction_ratio, None, name="channel_mlp")
        self.channel_mlp.build((None, channels))
        self.spatial_conv = keras.layers.Conv2D(
            1, self.kernel_size, padding="same", activation="sigmoid", name="spatial_conv"
        )
        self.spatial_conv.build((None, None, None, 2))

    def channel_weights(self, inputs):
        """Per-channel scaling factors, shape (N, C), each in [0, 1]."""
        inputs = self._ensure_built(inputs)
        average_path = self.channel_mlp(ops.mean(inputs, axis=(1, 2)))
        max_path = self.channel_mlp(ops.max(inputs, axis=(1, 2)))
        return ops.sigmoid(average_path + max_path)

    def _refine_channels(self, inputs):
        return inputs * self.channel_weights(inputs)[:, None, None, :]

    def _spatial_map_of(self, refined):
        descriptors = ops.concatenate(
            [ops.mean(refined, axis=-1, keepdims=True), ops.max(refined, axis=-1, keepdims=True)],
            axis=-1,
        )
        return self.spatial_conv(descriptors)

    def spatial_attention_map(self, inputs):
        """Per-pixel attention weights, shape (N, H, W, 1), each in [0, 1].

        Computed, as in the forward pass, on the channel-refined features of ``inputs``.
        """
        inputs = self._ensure_built(inputs)
        return self._spatial_map_of(self._refine_channels(inputs))

    def call(self, inputs):
        refined = self._refine_channels(inputs)
        return refined * self._spatial_map_of(refined)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config


# A registry, so that new modules only need an entry here to become available to
# build_attention_layer, add_attention and the attention stage.
ATTENTION_MODULES: dict[str, type[keras.layers.Layer]] = {
    "se": SqueezeExcitation,
    "cbam": CBAM,
}


def build_attention_layer(
    module: str, *, reduction_ratio: int, name: str | None = None
) -> keras.layers.Layer:
    """Instantiate the attention layer registered as ``module`` (a key of ``ATTENTION_MODULES``)."""
    if module not in ATTENTION_MODULES:
        raise ValueError(
            f"module={module!r} is not a known attention module; allowed: "
            f"{sorted(ATTENTION_MODULES)}."
        )
    return ATTENTION_MODULES[module](reduction_ratio=reduction_ratio, name=name)


def add_attention(
    base_model: keras.Model,
    module: str,
    *,
    placement: str | None = None,
    reduction_ratio: int = 8,
) -> keras.Model:
    """Return a new model equal to ``base_model`` with an attention layer after one feature block.

    Parameters
    ----------
    base_model : keras.Model
        A functional model whose feature blocks are named ``block1``, ``block2``, ... (as built by
        :func:`pixelflip.models.backbones.build_classifier`). It is not modified.
    module : str
        Key of ``ATTENTION_MODULES``.
    placement : str, optional
        Name of the feature block after which the layer goes; defaults to the last block.
    reduction_ratio : int
        Channel reduction ratio of the attention MLP.

    Returns
    -------
    keras.Model
        A clone of ``base_model`` (new layer objects holding copies of its weights) with a freshly
        initialised layer named ``attention_<module>`` inserted after ``placement``. The clone is
        not compiled.
    """
    block_names = feature_block_names(base_model)
    if not block_names:
        raise ValueError(
            f"Model {base_model.name!r} has no feature block layers named block1, block2, ...; "
            "build it with build_classifier."
        )
    if placement is None:
        placement = block_names[-1]
    if placement not in block_names:
        raise ValueError(
            f"placement={placement!r} is not a feature block of model {base_model.name!r}; "
            f"allowed: {block_names}."
        )
    layer_name = f"attention_{module}"
    attention_layer = build_attention_layer(
        module, reduction_ratio=reduction_ratio, name=layer_name
    )
    if any(layer.name == layer_name for layer in base_model.layers):
        raise ValueError(
            f"Model {base_model.name!r} already has a layer named {layer_name!r}; add each "
            "attention module to a base model only once."
        )

    def call_with_attention(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        return attention_layer(outputs) if layer.name == placement else outputs

    # Cloning instead of rewiring the base layers keeps fine-tuning of the new model from
    # changing the base model that later stages still compare against.
    cloned = keras.models.clone_model(base_model, call_function=call_with_attention)
    for layer in base_model.layers:
        cloned.get_layer(layer.name).set_weights(layer.get_weights())
    # Rebuilt only to give it its own name; input/output keep the base model's structure.
    return keras.Model(cloned.input, cloned.output, name=f"{base_model.name}_{module}")
