"""A small residual network of depthwise-separable convolutions, for photos on a CPU.

The architecture of keras-io's "Image classification from scratch" example (a mini Xception),
which trains on this very cats-vs-dogs dataset, scaled down so that one epoch of 7,000 photos
takes about two minutes on two CPU cores at 96x96: a separable convolution costs about a ninth
of a full one, and the residual shortcuts let the network be trained deeper from scratch.
``simple_cnn`` stays the digits model: on 128x128 photos it trains about five times slower than
this network (``benchmarks/photo_training.py --part speed``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

# The same momentum as simple_cnn's blocks (see pixelflip.models.backbones): a few thousand
# images for a few dozen epochs.
_BATCH_NORM_MOMENTUM = 0.9


def _separable_unit(inputs: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """ReLU, 3x3 separable convolution, batch normalisation (Xception's pre-activation order)."""
    x = keras.layers.Activation("relu", name=f"{name}_relu")(inputs)
    # No bias: the following BatchNormalization adds its own.
    x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                     name=f"{name}_sepconv")(x)
    return keras.layers.BatchNormalization(momentum=_BATCH_NORM_MOMENTUM, name=f"{name}_bn")(x)


def _residual_block(inputs: keras.KerasTensor, filters: int, index: int) -> keras.KerasTensor:
    """Two separable units, a stride-2 max pooling, plus a 1x1 stride-2 projection shortcut.

    The sum is the layer named ``block{index}``, where attention modules can be inserted.
    """
    x = _separable_unit(inputs, filters, f"block{index}_unit1")
    x = _separable_unit(x, filters, f"block{index}_unit2")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{index}_pool")(x)
    shortcut = keras.layers.Conv2D(filters, 1, strides=2, padding="same",
                                   name=f"block{index}_shortcut")(inputs)
    return keras.layers.Add(name=f"block{index}")([x, shortcut])


def separable_resnet_features(
    images: keras.KerasTensor, conv_filters: Sequence[int]
) -> keras.KerasTensor:
    """Features of ``images`` (N, H, W, C): a stride-2 entry convolution, then residual blocks.

    ``conv_filters[0]`` filters for the 3x3 entry convolution, one residual block (``block1``,
    ``block2``, ...) per further entry; every step halves the side, so the features are
    (N, H / 2**len(conv_filters), W / 2**len(conv_filters), conv_filters[-1]), rounded up.
    The last block's output is activated, so the head pools non-negative evidence as it does
    for simple_cnn.
    """
    if len(conv_filters) < 2:
        raise ValueError(
            f"conv_filters={tuple(conv_filters)!r} is invalid for separable_resnet; expected the "
            "entry convolution's filters followed by at least one residual block's."
        )
    x = keras.layers.Conv2D(int(conv_filters[0]), 3, strides=2, padding="same", use_bias=False,
                            name="entry_conv")(images)
    x = keras.layers.BatchNormalization(momentum=_BATCH_NORM_MOMENTUM, name="entry_bn")(x)
    x = keras.layers.Activation("relu", name="entry_relu")(x)
    for index, filters in enumerate(conv_filters[1:], start=1):
        x = _residual_block(x, int(filters), index)
    return keras.layers.Activation("relu", name="features_relu")(x)
