"""The baseline convolutional classifier that every later stage starts from."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

_BLOCK_NAME = re.compile(r"^block(\d+)$")


def _validate_classifier_arguments(
    input_shape: tuple[int, int, int],
    num_classes: int,
    conv_filters: Sequence[int],
    dense_units: int,
    dropout_rate: float,
) -> None:
    if len(input_shape) != 3 or any(int(size) < 1 for size in input_shape):
        raise ValueError(
            f"input_shape={tuple(input_shape)!r} is invalid; expected (height, width, channels) "
            "with every entry >= 1."
        )
    if int(num_classes) < 2:
        raise ValueError(
            f"num_classes={num_classes!r} is invalid; a classifier needs >= 2 classes."
        )
    if len(conv_filters) == 0 or any(int(filters) < 1 for filters in conv_filters):
        raise ValueError(
            f"conv_filters={tuple(conv_filters)!r} is invalid; expected at least one block and "
            "every filter count >= 1."
        )
    if int(dense_units) < 1:
        raise ValueError(f"dense_units={dense_units!r} is invalid; expected an integer >= 1.")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"dropout_rate={dropout_rate!r} is invalid; expected a value in [0, 1).")
    # Each block halves the spatial size with a valid 2x2 pooling, so the input must survive
    # len(conv_filters) halvings with at least one pixel left.
    smallest_allowed = 2 ** len(conv_filters)
    height, width = int(input_shape[0]), int(input_shape[1])
    if min(height, width) < smallest_allowed:
        raise ValueError(
            f"input_shape={tuple(input_shape)!r} is too small for {len(conv_filters)} pooling "
            f"blocks; height and width must be >= {smallest_allowed}."
        )


def _feature_block(inputs: keras.KerasTensor, filters: int, index: int) -> keras.KerasTensor:
    """Two 3x3 conv/BN/ReLU units then a 2x2 max pooling, whose layer is named ``block{index}``."""
    x = inputs
    for unit in (1, 2):
        # The convolution has no bias because the following BatchNormalization adds its own.
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"block{index}_conv{unit}"
        )(x)
        # Momentum 0.9 instead of Keras' 0.99: this pipeline trains on a few thousand images for a
        # few epochs, and with 0.99 the moving statistics used at inference lag far behind the
        # batch statistics used in training, so evaluation accuracy trails training accuracy.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{index}_bn{unit}")(x)
        x = keras.layers.Activation("relu", name=f"block{index}_relu{unit}")(x)
    return keras.layers.MaxPooling2D(2, name=f"block{index}")(x)


def build_classifier(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    conv_filters: Sequence[int] = (32, 64),
    dense_units: int = 128,
    dropout_rate: float = 0.3,
    name: str = "simple_cnn",
) -> keras.Model:
    """Build the baseline CNN as a functional Keras model.

    Parameters
    ----------
    input_shape : (height, width, channels)
        Shape of one image. Inputs are float32 in [0, 1]; the model does no rescaling.
    num_classes : int
        Number of classes K (>= 2).
    conv_filters : sequence of int
        Filters of each feature block. Block ``i`` (1-based) ends in a layer named ``block{i}``,
        after which :func:`pixelflip.models.attention.add_attention` can insert a module.
    dense_units : int
        Width of the hidden dense layer.
    dropout_rate : float in [0, 1)
        Dropout before and after the hidden dense layer.
    name : str
        Model name.

    Returns
    -------
    keras.Model
        Maps (N, H, W, C) float32 images to (N, K) softmax probabilities. The pre-softmax scores
        are the output of the layer named ``"logits"``.
    """
    _validate_classifier_arguments(
        input_shape, num_classes, conv_filters, dense_units, dropout_rate
    )
    inputs = keras.Input(shape=tuple(int(size) for size in input_shape), name="image")
    x = inputs
    for index, filters in enumerate(conv_filters, start=1):
        x = _feature_block(x, int(filters), index)
    # Global average pooling rather than Flatten: the head's size no longer depends on the image
    # size (far fewer parameters, less overfitting on small data sets), and each channel becomes
    # one evidence score, which keeps the attribution maps of later stages easy to read.
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = keras.layers.Dropout(dropout_rate, name="dropout_features")(x)
    x = keras.layers.Dense(int(dense_units), activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout_rate, name="dropout_dense")(x)
    logits = keras.layers.Dense(int(num_classes), name="logits")(x)
    probabilities = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=name)


def feature_block_names(model: keras.Model) -> list[str]:
    """Names of the layers that end a feature block (``block1``, ``block2``, ...) in block order."""
    numbered = [
        (int(match.group(1)), layer.name)
        for layer in model.layers
        if (match := _BLOCK_NAME.match(layer.name))
    ]
    return [layer_name for _, layer_name in sorted(numbered)]
