"""Channel attention (squeeze-and-excitation, CBAM) and the base class of every attention layer.

Every layer is registered under the ``pixelflip`` package, so a model that contains one loads with
``keras.saving.load_model(path, safe_mode=True)`` once this module is imported. Every layer works
under the ``"mixed_bfloat16"`` and ``"mixed_float16"`` dtype policies: it computes in its compute
dtype, keeps its weights in float32, and returns its explanation maps in float32.
"""

from __future__ import annotations

import keras
from keras import ops

from pixelflip.config.checks import check_integer


def _channels_of(input_shape: tuple, layer_name: str) -> int:
    if len(input_shape) != 4 or input_shape[-1] is None:
        raise ValueError(
            f"Layer {layer_name!r} received input_shape={tuple(input_shape)!r}; expected "
            "(batch, height, width, channels) with a known channel count."
        )
    return int(input_shape[-1])


def _normalize_per_image(maps, *, subtract_min: bool):
    """Scale (N, H, W, 1) maps into [0, 1] image by image, in float32.

    With ``subtract_min`` the minimum of each image goes to 0 and its maximum to 1; without it,
    each image is divided by its maximum (for maps of non-negative weights).
    """
    maps = ops.cast(maps, "float32")
    lowest = ops.min(maps, axis=(1, 2, 3), keepdims=True) if subtract_min else 0.0
    span = ops.max(maps, axis=(1, 2, 3), keepdims=True) - lowest
    # A constant map has no span; the floor turns it into zeros instead of NaNs.
    return (maps - lowest) / ops.maximum(span, keras.config.epsilon())


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
        self.hidden = keras.layers.Dense(
            hidden_units, activation="relu", name="hidden", dtype=self.dtype_policy
        )
        self.projection = keras.layers.Dense(
            channels, activation=self.output_activation, name="projection", dtype=self.dtype_policy
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
    """Base of every attention module: a validated reduction ratio and a shape-preserving call.

    Subclasses create and build their sublayers in ``build`` and implement
    ``spatial_attention_map(inputs) -> (N, H, W, 1)`` float32 in [0, 1].
    """

    def __init__(self, reduction_ratio: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.reduction_ratio = check_integer("reduction_ratio", reduction_ratio, minimum=1)

    def _ensure_built(self, inputs):
        """Cast ``inputs`` to the compute dtype and build the layer on first use.

        The public inspection methods go through here because, unlike ``__call__``, they get
        neither the automatic build nor the automatic cast.
        """
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        if not self.built:
            self.build(tuple(inputs.shape))
        return inputs

    def _pointwise_conv(self, filters: int, name: str, **kwargs) -> keras.layers.Conv2D:
        """A 1x1 convolution that follows this layer's dtype policy."""
        return keras.layers.Conv2D(filters, 1, name=name, dtype=self.dtype_policy, **kwargs)

    def spatial_attention_map(self, inputs):
        raise NotImplementedError(
            f"{type(self).__name__} does not define spatial_attention_map; every attention "
            "module must return an (N, H, W, 1) map in [0, 1]."
        )

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
    (C -> max(1, C // r) with ReLU -> C with sigmoid) turns those into per-channel factors in
    [0, 1], and the input channels are scaled by them.

    Input and output: (N, H, W, C) float tensors of the same shape.

    SE has no spatial attention. Its :meth:`spatial_attention_map` is therefore only a proxy:
    the channel mean of the SE-rescaled features, min-max normalised per image.
    """

    def build(self, input_shape):
        channels = _channels_of(input_shape, self.name)
        self.channel_mlp = _ChannelMLP(
            self.reduction_ratio, "sigmoid", name="channel_mlp", dtype=self.dtype_policy
        )
        self.channel_mlp.build((None, channels))

    def channel_weights(self, inputs):
        """Per-channel scaling factors, shape (N, C), each in [0, 1] (compute dtype)."""
        inputs = self._ensure_built(inputs)
        return self.channel_mlp(ops.mean(inputs, axis=(1, 2)))

    def call(self, inputs):
        return inputs * self.channel_weights(inputs)[:, None, None, :]

    def spatial_attention_map(self, inputs):
        """A proxy map, shape (N, H, W, 1), float32 in [0, 1]; SE itself has no spatial attention.

        It is the mean over channels of the SE-rescaled features (the layer's output), min-max
        normalised per image: 1 where the rescaled activations are strongest, 0 where weakest, and
        all zeros for an image whose mean activation is the same everywhere. Unlike the maps of
        the other modules it is not a weighting that the layer applies.
        """
        inputs = self._ensure_built(inputs)
        rescaled_mean = ops.mean(self.call(inputs), axis=-1, keepdims=True)
        return _normalize_per_image(rescaled_mean, subtract_min=True)


@keras.saving.register_keras_serializable(package="pixelflip")
class CBAM(_AttentionLayer):
    """Convolutional Block Attention Module (Woo et al., 2018).

    Channel attention first: one MLP shared by the average- and max-pooled channel descriptors,
    summed and passed through a sigmoid, scales the channels. Spatial attention second: the
    channel-wise mean and max maps of the refined features are concatenated and a
    ``kernel_size`` x ``kernel_size`` convolution with a sigmoid gives one weight per pixel.

    Input and output: (N, H, W, C) float tensors of the same shape.

    :meth:`spatial_attention_map` is that per-pixel sigmoid weight, exactly as applied.
    """

    def __init__(self, reduction_ratio: int = 8, kernel_size: int = 7, **kwargs):
        super().__init__(reduction_ratio=reduction_ratio, **kwargs)
        self.kernel_size = check_integer("kernel_size", kernel_size, minimum=1)

    def build(self, input_shape):
        channels = _channels_of(input_shape, self.name)
        # No activation inside the MLP output: the sigmoid is applied to the sum of both paths.
        self.channel_mlp = _ChannelMLP(
            self.reduction_ratio, None, name="channel_mlp", dtype=self.dtype_policy
        )
        self.channel_mlp.build((None, channels))
        self.spatial_conv = keras.layers.Conv2D(
            1,
            self.kernel_size,
            padding="same",
            activation="sigmoid",
            name="spatial_conv",
            dtype=self.dtype_policy,
        )
        self.spatial_conv.build((None, None, None, 2))

    def channel_weights(self, inputs):
        """Per-channel scaling factors, shape (N, C), each in [0, 1] (compute dtype)."""
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
        """Per-pixel attention weights, shape (N, H, W, 1), float32, each in [0, 1].

        Computed, as in the forward pass, on the channel-refined features of ``inputs``; these
        are the weights the layer multiplies its features by (not renormalised).
        """
        inputs = self._ensure_built(inputs)
        return ops.cast(self._spatial_map_of(self._refine_channels(inputs)), "float32")

    def call(self, inputs):
        refined = self._refine_channels(inputs)
        return refined * self._spatial_map_of(refined)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config
