"""Attention over spatial positions: DANet's position attention and GCNet's global context block.

Both layers start as the identity (DANet's ``gamma`` and GCNet's last transform layer are
initialised to zero), so inserting one into a trained backbone leaves its predictions unchanged
until fine-tuning moves them. Softmaxes over positions are computed in float32 whatever the dtype
policy, because in bfloat16 or float16 the many small weights of a softmax over H*W positions
lose most of their precision.
"""

from __future__ import annotations

import keras
from keras import ops

from pixelflip.models.channel_attention import _AttentionLayer, _channels_of, _normalize_per_image


def _flatten_positions(features):
    """(N, H, W, C) -> (N, H * W, C), positions in row-major (height, then width) order."""
    shape = ops.shape(features)
    return ops.reshape(features, (shape[0], -1, shape[-1]))


def _positions_to_map(position_values, features):
    """(N, H * W) row-major values -> (N, H, W, 1) laid out like ``features`` (N, H, W, C)."""
    shape = ops.shape(features)
    return ops.reshape(position_values, (shape[0], shape[1], shape[2], 1))


def _float32_softmax(logits):
    """Softmax over the last axis, computed and returned in float32."""
    logits = ops.cast(logits, "float32")
    if logits.shape[-1] == 1:
        # A 1x1 feature map (a deep stage of a small image): the weight is 1, and keras would
        # warn about a softmax over a single value on every call.
        return ops.ones_like(logits)
    return ops.softmax(logits, axis=-1)


@keras.saving.register_keras_serializable(package="pixelflip")
class PositionAttention(_AttentionLayer):
    """Position attention module (PAM) of DANet (Fu et al., 2019).

    1x1 convolutions give queries and keys with max(1, C // r) channels and values with C
    channels. The energy between positions i and j is q_i . k_j over the H * W positions; a
    softmax over the keys j turns each row into attention weights A (N, H*W, H*W) whose rows sum
    to 1. The output is ``gamma * (A @ V) + inputs``, with ``gamma`` a trainable scalar that
    starts at 0, so the layer starts as the identity.

    Input and output: (N, H, W, C) float tensors of the same shape. Memory grows as (H * W)^2 per
    image, so the layer belongs after a late, low-resolution feature block.

    :meth:`spatial_attention_map` is the mean attention that each position receives over all
    queries, divided by its per-image maximum.
    """

    def build(self, input_shape):
        channels = _channels_of(input_shape, self.name)
        projection_channels = max(1, channels // self.reduction_ratio)
        self.query_conv = self._pointwise_conv(projection_channels, "query_conv")
        self.key_conv = self._pointwise_conv(projection_channels, "key_conv")
        self.value_conv = self._pointwise_conv(channels, "value_conv")
        for convolution in (self.query_conv, self.key_conv, self.value_conv):
            convolution.build((None, None, None, channels))
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def _attention(self, inputs):
        # The energies are formed in float32 too: a softmax amplifies absolute errors in its
        # logits, and half-precision energies of size ~10 are already off by ~0.05.
        queries = ops.cast(_flatten_positions(self.query_conv(inputs)), "float32")
        keys = ops.cast(_flatten_positions(self.key_conv(inputs)), "float32")
        return _float32_softmax(ops.matmul(queries, ops.transpose(keys, (0, 2, 1))))

    def attention_matrix(self, inputs):
        """Attention weights, shape (N, H*W, H*W), float32.

        Row i holds the softmax over key positions j of q_i . k_j, so every row sums to 1.
        Positions are numbered row-major: position ``y * W + x``.
        """
        return self._attention(self._ensure_built(inputs))

    def call(self, inputs):
        attention = ops.cast(self._attention(inputs), self.compute_dtype)
        values = _flatten_positions(self.value_conv(inputs))
        attended = ops.reshape(ops.matmul(attention, values), ops.shape(inputs))
        return ops.cast(self.gamma, self.compute_dtype) * attended + inputs

    def spatial_attention_map(self, inputs):
        """Attention received per position, shape (N, H, W, 1), float32 in [0, 1].

        The mean over all queries of the attention each position gets (a column mean of
        :meth:`attention_matrix`), divided by its per-image maximum: 1 at the position attended
        to most. Independent of ``gamma``.
        """
        inputs = self._ensure_built(inputs)
        received = ops.mean(self._attention(inputs), axis=1)
        return _normalize_per_image(_positions_to_map(received, inputs), subtract_min=False)


@keras.saving.register_keras_serializable(package="pixelflip")
class GlobalContext(_AttentionLayer):
    """Global context (GC) block of GCNet (Cao et al., 2019).

    Context modelling: a 1x1 convolution C -> 1 and a softmax over the H * W positions give
    context weights that sum to 1; the weighted sum of the features is one context vector (N, C).
    Transform: C -> max(1, C // r), LayerNormalization, ReLU, -> C (dense layers on the pooled
    vector, which is what GCNet's 1x1 convolutions on a 1x1 map compute). Fusion: the transformed
    vector is added to the features at every position.

    As in GCNet's reference implementation, the last transform layer starts at zero, so the block
    starts as the identity. With a single hidden unit (C < 2 * r) the layer normalisation leaves
    only its learned offset, and the added vector no longer depends on the image.

    Input and output: (N, H, W, C) float tensors of the same shape.

    :meth:`spatial_attention_map` is the context weights divided by their per-image maximum.
    """

    def build(self, input_shape):
        channels = _channels_of(input_shape, self.name)
        hidden_units = max(1, channels // self.reduction_ratio)
        self.context_conv = self._pointwise_conv(1, "context_conv")
        self.context_conv.build((None, None, None, channels))
        self.transform_reduce = keras.layers.Dense(
            hidden_units, name="transform_reduce", dtype=self.dtype_policy
        )
        # epsilon as in PyTorch's LayerNorm, which GCNet uses.
        self.transform_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name="transform_norm", dtype=self.dtype_policy
        )
        self.transform_expand = keras.layers.Dense(
            channels, kernel_initializer="zeros", name="transform_expand", dtype=self.dtype_policy
        )
        self.transform_reduce.build((None, channels))
        self.transform_norm.build((None, hidden_units))
        self.transform_expand.build((None, hidden_units))

    def _context_weights(self, inputs):
        logits = _flatten_positions(self.context_conv(inputs))[:, :, 0]
        return _float32_softmax(logits)

    def context_weights(self, inputs):
        """Context weights, shape (N, H*W), float32, each row summing to 1.

        Positions are numbered row-major: position ``y * W + x``.
        """
        return self._context_weights(self._ensure_built(inputs))

    def call(self, inputs):
        weights = ops.cast(self._context_weights(inputs), self.compute_dtype)
        context = ops.matmul(weights[:, None, :], _flatten_positions(inputs))[:, 0, :]
        hidden = ops.relu(self.transform_norm(self.transform_reduce(context)))
        return inputs + self.transform_expand(hidden)[:, None, None, :]

    def spatial_attention_map(self, inputs):
        """Context weights as a map, shape (N, H, W, 1), float32 in [0, 1].

        The softmax context weights divided by their per-image maximum: 1 at the position that
        contributes most to the context vector.
        """
        inputs = self._ensure_built(inputs)
        weights = _positions_to_map(self._context_weights(inputs), inputs)
        return _normalize_per_image(weights, subtract_min=False)
