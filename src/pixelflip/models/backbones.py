"""Classifier backbones: the baseline CNN and ``keras.applications`` networks, one shared head.

Every classifier maps float32 images in [0, 1], shape (N, H, W, C) with C = 1 or 3, to (N, K)
softmax probabilities, whatever its backbone; the pre-softmax scores are the output of the layer
named ``"logits"``. ``keras.applications`` backbones get an
:class:`~pixelflip.models.input_adapter.InputAdapter` in front, which replicates grey to RGB,
resizes to the backbone's side and maps [0, 1] to the backbone's pixel range inside the model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import keras

from pixelflip.models.input_adapter import InputAdapter
from pixelflip.models.separable_resnet import separable_resnet_features
from pixelflip.models.zoo import (
    APPLICATION_BACKBONES,
    MIN_APPLICATION_INPUT_SIZE,
    BackboneWeightsError,
    build_application,
)

__all__ = [
    "BACKBONES",
    "OWN_BACKBONES",
    "BackboneWeightsError",
    "build_classifier",
    "feature_block_names",
]

# Built here, from scratch, blocks named block1, block2, ...: simple_cnn for digits,
# separable_resnet for photos.
OWN_BACKBONES: tuple[str, ...] = ("simple_cnn", "separable_resnet")
BACKBONES: tuple[str, ...] = (*OWN_BACKBONES, *APPLICATION_BACKBONES)

_BLOCK_NAME = re.compile(r"^block(\d+)$")


def _validate_positive(value, argument: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{argument}={value!r} is invalid; expected an integer >= 1.")
    return int(value)


def _validate_classifier_arguments(
    input_shape: tuple[int, int, int],
    num_classes: int,
    backbone: str,
    dense_units: int,
    dropout_rate: float,
    input_size: int | None,
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
    if backbone not in BACKBONES:
        raise ValueError(
            f"backbone={backbone!r} is unknown; expected one of {', '.join(BACKBONES)}."
        )
    _validate_positive(dense_units, "dense_units")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"dropout_rate={dropout_rate!r} is invalid; expected a value in [0, 1).")
    if input_size is not None:
        _validate_positive(input_size, "input_size")


def _resolve_weights(weights: str | os.PathLike, backbone: str) -> str:
    """Return "none", "imagenet" or the path of an existing ``.h5`` weights file."""
    if weights in ("none", "imagenet"):
        if weights == "imagenet" and backbone in OWN_BACKBONES:
            raise ValueError(
                f"weights='imagenet' needs a keras.applications backbone; {backbone} has no "
                f"ImageNet weights: use one of {', '.join(APPLICATION_BACKBONES)}, or 'none'."
            )
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights={weights!r} is a {type(weights).__name__}; expected 'none', 'imagenet' or "
            "a file path (str or os.PathLike)."
        )
    path = os.fspath(weights)
    if not path.endswith(".h5"):
        raise ValueError(
            f"weights={path!r} is invalid; expected 'none', 'imagenet' or the path of a Keras "
            "weights file ending in .weights.h5 (or a legacy Keras .h5, such as the ImageNet "
            "files keras.applications downloads)."
        )
    if not os.path.isfile(path):
        raise ValueError(f"weights={path!r} does not exist; expected an existing weights file.")
    return path


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


def _own_backbone_features(
    images: keras.KerasTensor, backbone: str, conv_filters: Sequence[int],
    input_size: int | None,
) -> keras.KerasTensor:
    if len(conv_filters) == 0 or any(int(filters) < 1 for filters in conv_filters):
        raise ValueError(
            f"conv_filters={tuple(conv_filters)!r} is invalid; expected at least one block and "
            "every filter count >= 1."
        )
    height, width = int(images.shape[1]), int(images.shape[2])
    x = images
    if input_size is not None and (height, width) != (input_size, input_size):
        x = InputAdapter(input_size, to_rgb=False, mode="unit", dtype="float32",
                         name="input_adapter")(x)
        height = width = input_size
    # Each block (and separable_resnet's entry convolution) halves the side, so the input must
    # survive len(conv_filters) halvings with at least one pixel left.
    smallest_allowed = 2 ** len(conv_filters)
    if min(height, width) < smallest_allowed:
        raise ValueError(
            f"The images the backbone sees ({height}x{width}) are too small for "
            f"{len(conv_filters)} pooling blocks; height and width (or input_size) must be >= "
            f"{smallest_allowed}."
        )
    if backbone == "separable_resnet":
        return separable_resnet_features(x, conv_filters)
    for index, filters in enumerate(conv_filters, start=1):
        x = _feature_block(x, int(filters), index)
    return x


def _application_features(
    images: keras.KerasTensor, backbone: str, weights: str, input_size: int | None
) -> keras.KerasTensor:
    height, width, channels = (int(size) for size in images.shape[1:])
    if channels not in (1, 3):
        raise ValueError(
            f"backbone={backbone!r} needs greyscale (1 channel) or RGB (3 channels) images; "
            f"got {channels} channels."
        )
    if input_size is not None and input_size < MIN_APPLICATION_INPUT_SIZE:
        raise ValueError(
            f"input_size={input_size} is too small for {backbone}; the minimum is "
            f"{MIN_APPLICATION_INPUT_SIZE} (or leave it unset to use the image size)."
        )
    side = input_size or max(height, width, MIN_APPLICATION_INPUT_SIZE)
    # float32 whatever the dtype policy: the mean subtraction of "caffe" would lose most of a
    # pixel's precision in float16.
    adapted = InputAdapter(
        side, to_rgb=True, mode=APPLICATION_BACKBONES[backbone].adapter_mode, dtype="float32",
        name="input_adapter",
    )(images)
    return build_application(backbone, adapted, weights=weights)


# The layers of _classification_head, in order: what trains with a new attention module while
# the backbone is frozen.
HEAD_LAYER_NAMES = ("global_pool", "dropout_features", "dense", "dropout_dense", "logits",
                    "probabilities")


def _classification_head(
    features: keras.KerasTensor, num_classes: int, dense_units: int, dropout_rate: float
) -> keras.KerasTensor:
    """Pool (N, h, w, F) features into (N, K) probabilities, via a layer named ``"logits"``."""
    # Global average pooling rather than Flatten: the head's size no longer depends on the image
    # size (far fewer parameters, less overfitting on small data sets), and each channel becomes
    # one evidence score, which keeps the attribution maps of later stages easy to read.
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(features)
    x = keras.layers.Dropout(dropout_rate, name="dropout_features")(x)
    x = keras.layers.Dense(int(dense_units), activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout_rate, name="dropout_dense")(x)
    logits = keras.layers.Dense(int(num_classes), name="logits")(x)
    # float32 under mixed precision too: explanations compare probabilities near 0 and 1.
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


def build_classifier(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    backbone: str = "simple_cnn",
    weights: str | os.PathLike = "none",
    conv_filters: Sequence[int] = (32, 64),
    dense_units: int = 128,
    dropout_rate: float = 0.3,
    input_size: int | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build a classifier on one of ``BACKBONES`` as a single flat functional Keras model.

    Parameters
    ----------
    input_shape : (height, width, channels)
        Shape of one image. Inputs are float32 in [0, 1], in an input layer named ``"image"``.
        ``keras.applications`` backbones need 1 (greyscale, replicated to RGB) or 3 channels.
    num_classes : int
        Number of classes K (>= 2).
    backbone : str
        ``"simple_cnn"`` (two conv/BN/ReLU units and a pooling per block, blocks ``block1``,
        ``block2``, ...), ``"separable_resnet"`` (a stride-2 entry convolution, then residual
        blocks of separable convolutions, see :mod:`pixelflip.models.separable_resnet`) or a
        ``keras.applications`` network: ``"mobilenet_v2"``,
        ``"efficientnet_b0"``, ``"resnet50"``, ``"vgg16"``, built without its top; its layers
        appear in ``model.layers`` under their keras names.
    weights : "none", "imagenet" or path
        ``"none"``: random initialisation. ``"imagenet"`` (applications only): keras' ImageNet
        weights, downloaded into ``~/.keras/models`` when not cached there. A path to a
        ``.weights.h5`` file (or a legacy keras ``.h5``): for an application, weights of the same
        no-top application; for simple_cnn and separable_resnet, weights of a whole classifier
        built with the same arguments.
    conv_filters : sequence of int
        simple_cnn: filters of each feature block; separable_resnet: of the entry convolution,
        then of each residual block (at least two entries).
    dense_units : int
        Width of the hidden dense layer of the head.
    dropout_rate : float in [0, 1)
        Dropout before and after the hidden dense layer.
    input_size : int or None
        Side of the square images the backbone sees (the model resizes bilinearly). None: the
        image size, at least 32 for applications. Applications need >= 32.
    name : str or None
        Model name; None uses the backbone name.

    Returns
    -------
    keras.Model
        Maps (N, H, W, C) float32 images to (N, K) float32 softmax probabilities.

    Raises
    ------
    ValueError
        For an invalid argument, including a weights path that does not exist or does not end in
        ``.h5``, ``"imagenet"`` with simple_cnn or separable_resnet, and ``input_size`` below 32 for applications.
    TypeError
        If ``weights`` is neither a string nor a path.
    BackboneWeightsError
        (a ValueError) If ``weights="imagenet"`` and the ImageNet file is neither cached nor
        downloadable; the message says how to supply it.
    """
    _validate_classifier_arguments(
        input_shape, num_classes, backbone, dense_units, dropout_rate, input_size
    )
    weights = _resolve_weights(weights, backbone)
    images = keras.Input(shape=tuple(int(size) for size in input_shape), name="image",
                         dtype="float32")
    if backbone in OWN_BACKBONES:
        features = _own_backbone_features(images, backbone, conv_filters, input_size)
    else:
        features = _application_features(images, backbone, weights, input_size)
    probabilities = _classification_head(features, num_classes, dense_units, dropout_rate)
    model = keras.Model(images, probabilities, name=name or backbone)
    if backbone in OWN_BACKBONES and weights != "none":
        model.load_weights(weights)
    return model


def feature_block_names(model: keras.Model) -> list[str]:
    """Names of the layers that end each feature stage of ``model``, shallowest first.

    For a ``keras.applications`` backbone, the layers of its curated stage list (see
    ``pixelflip.models.zoo.APPLICATION_BACKBONES``) that the model contains; for simple_cnn and
    separable_resnet, ``block1``, ``block2``, ... in block order. Layer names are all it reads, so it works on a
    model loaded from a ``.keras`` file. Empty when the model has neither.
    """
    layer_names = {layer.name for layer in model.layers}
    # Our own blocks first: separable_resnet names its poolings block1_pool, ..., which are
    # also VGG16's stage names. No keras.applications network has a layer named block<N>.
    numbered = [
        (int(match.group(1)), layer_name)
        for layer_name in layer_names
        if (match := _BLOCK_NAME.match(layer_name))
    ]
    if numbered:
        return [layer_name for _, layer_name in sorted(numbered)]
    for facts in APPLICATION_BACKBONES.values():
        present = [name for name in facts.stage_names if name in layer_names]
        if present:
            return present
    return []
