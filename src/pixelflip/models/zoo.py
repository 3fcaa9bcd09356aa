"""``keras.applications`` backbones: what pixelflip knows about each, and how it builds them.

Each backbone is built without its ImageNet classification top and with ``input_tensor`` set to
the output of pixelflip's :class:`~pixelflip.models.input_adapter.InputAdapter`, so its layers
join the classifier's own functional graph: ``model.layers`` lists them one by one (for example
``conv5_block3_out``) and attention modules can be inserted after any of them by name.
"""

from __future__ import annotations

import os
import socket
import urllib.error
from dataclasses import dataclass, field

import keras

# The smallest side every keras.applications backbone here accepts (keras checks it too, but
# later and with a less helpful message).
MIN_APPLICATION_INPUT_SIZE = 32

# Per socket operation, not for the whole download: long enough for a slow but working network,
# short enough that a machine without internet fails in seconds instead of hanging.
DOWNLOAD_TIMEOUT_SECONDS = 20.0

# Weights file sides MobileNetV2 ships; keras falls back to the 224 file for any other side
# (convolution weights do not depend on the side, so every file fits every side).
_MOBILENET_V2_SIDES = (96, 128, 160, 192, 224)


class BackboneWeightsError(ValueError):
    """The ImageNet weights of a backbone could not be obtained (typically: no internet)."""


@dataclass(frozen=True)
class ApplicationFacts:
    """What pixelflip needs to know about one ``keras.applications`` backbone.

    Attributes
    ----------
    constructor : str
        Name of the builder in ``keras.applications`` (e.g. ``"ResNet50"``).
    adapter_mode : str
        The :data:`~pixelflip.models.input_adapter.ADAPTER_MODES` key of the pixel range the
        backbone was trained on.
    stage_names : tuple of str
        In order, the layer that ends each resolution stage (the output of the stage at that
        resolution). Attention modules go after one of these; the default is the last.
    imagenet_url_base, imagenet_file_template : str
        The no-top ImageNet weights file is ``imagenet_url_base + file name``, where the file
        name is the template formatted with ``side`` (see :meth:`imagenet_file_name`).
    imagenet_file_hash : str or None
        The md5 keras checks the file against (None: keras checks none).
    imagenet_sides : tuple of int
        Sides with their own weights file; any other side uses the 224 file. Empty when one file
        serves every side.
    imagenet_path_equivalent : bool
        Whether building with ``weights=<path of the ImageNet file>`` gives the same model as
        ``weights="imagenet"``. False for EfficientNetB0, which adds an input rescaling layer
        only when asked for ``"imagenet"`` by name.
    """

    constructor: str
    adapter_mode: str
    stage_names: tuple[str, ...]
    imagenet_url_base: str
    imagenet_file_template: str
    imagenet_file_hash: str | None
    imagenet_sides: tuple[int, ...] = field(default=())
    imagenet_path_equivalent: bool = True

    def imagenet_file_name(self, side: int) -> str:
        """File name of the no-top ImageNet weights that keras loads for a ``side`` input."""
        weights_side = side if side in self.imagenet_sides else 224
        return self.imagenet_file_template.format(side=weights_side)

    def imagenet_url(self, side: int) -> str:
        """Exact download address of :meth:`imagenet_file_name`."""
        return self.imagenet_url_base + self.imagenet_file_name(side)


_KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# The URLs, file names and hashes are the ones keras.applications itself downloads and checks
# (tests compare them with the keras source), so a file fetched here is the file keras finds.
APPLICATION_BACKBONES: dict[str, ApplicationFacts] = {
    "mobilenet_v2": ApplicationFacts(
        constructor="MobileNetV2",
        adapter_mode="tf",
        stage_names=(
            "expanded_conv_project_BN", "block_2_add", "block_5_add", "block_12_add", "out_relu",
        ),
        imagenet_url_base=_KERAS_APPLICATIONS_URL + "mobilenet_v2/",
        imagenet_file_template="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{side}_no_top.h5",
        imagenet_file_hash=None,
        imagenet_sides=_MOBILENET_V2_SIDES,
    ),
    "efficientnet_b0": ApplicationFacts(
        constructor="EfficientNetB0",
        # EfficientNet rescales to [0, 1] and normalises with ImageNet statistics inside the
        # model, so it takes raw [0, 255] pixels.
        adapter_mode="pixels",
        stage_names=(
            "block1a_project_bn", "block2b_add", "block3b_add", "block5c_add", "top_activation",
        ),
        imagenet_url_base="https://storage.googleapis.com/keras-applications/",
        imagenet_file_template="efficientnetb0_notop.h5",
        imagenet_file_hash="50bc09e76180e00e4465e1a485ddc09d",
        imagenet_path_equivalent=False,
    ),
    "resnet50": ApplicationFacts(
        constructor="ResNet50",
        adapter_mode="caffe",
        stage_names=("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
        imagenet_url_base=_KERAS_APPLICATIONS_URL + "resnet/",
        imagenet_file_template="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_file_hash="4d473c1dd8becc155b73f8504c6f6626",
    ),
    "vgg16": ApplicationFacts(
        constructor="VGG16",
        adapter_mode="caffe",
        stage_names=("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool"),
        imagenet_url_base=_KERAS_APPLICATIONS_URL + "vgg16/",
        imagenet_file_template="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_file_hash="6d6bbae143d832006294945121d1f1fc",
    ),
}


def keras_models_directory() -> str:
    """Directory where keras looks for downloaded application weights: ``<keras home>/models``.

    Keras home is ``$KERAS_HOME`` if it was set when keras was imported, else ``~/.keras``.
    """
    # keras exposes no public accessor for its home directory; this is the one get_file uses.
    from keras.src.backend.config import keras_home

    return os.path.join(os.path.expanduser(keras_home()), "models")


def _weights_unavailable_message(backbone: str, side: int, reason: str) -> str:
    facts = APPLICATION_BACKBONES[backbone]
    url = facts.imagenet_url(side)
    directory = keras_models_directory()
    cache_advice = f"put it in {directory} (keras' cache: $KERAS_HOME/models or ~/.keras/models)"
    if facts.imagenet_path_equivalent:
        supply = f"either {cache_advice}, or set train.weights to the path of the file"
    else:
        # A path would build the model without the input rescaling keras adds for "imagenet".
        supply = f"{cache_advice} and keep train.weights: imagenet"
    return (
        f"The ImageNet weights of {backbone} could not be downloaded from {url} ({reason}): "
        "this machine has no internet access to it. To supply them, download "
        f"{url} on a machine with internet access, then {supply}; or train from scratch with "
        "train.weights: none."
    )


def _download_failure_reason(error: BaseException) -> str:
    """The network's own words for a failed download (keras wraps them with the URL again)."""
    cause = error.__context__
    if isinstance(cause, urllib.error.HTTPError):
        return f"HTTP {cause.code} {cause.reason}"
    if isinstance(cause, urllib.error.URLError):
        return str(cause.reason)
    return str(error) or type(error).__name__


def fetch_imagenet_weights(backbone: str, side: int) -> str:
    """Make sure the no-top ImageNet weights of ``backbone`` are in keras' cache; return the path.

    A file already cached (with the right hash) is used as it is; otherwise it is downloaded
    with a per-operation socket timeout of ``DOWNLOAD_TIMEOUT_SECONDS``.

    Raises
    ------
    BackboneWeightsError
        If the file is not cached and cannot be downloaded (no internet, proxy refused, bad
        hash); the message names the URL and how to supply the file by hand.
    """
    facts = APPLICATION_BACKBONES[backbone]
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        return keras.utils.get_file(
            facts.imagenet_file_name(side),
            facts.imagenet_url(side),
            cache_subdir="models",
            file_hash=facts.imagenet_file_hash,
        )
    # keras.utils.get_file raises a bare Exception for network failures and a ValueError for a
    # bad hash; every failure here means the same thing to the user.
    except Exception as error:
        raise BackboneWeightsError(
            _weights_unavailable_message(backbone, side, _download_failure_reason(error))
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)


def build_application(
    backbone: str, adapted_images: keras.KerasTensor, *, weights: str | os.PathLike
) -> keras.KerasTensor:
    """Apply a ``keras.applications`` backbone (no top) to ``adapted_images``; return its features.

    Parameters
    ----------
    backbone : str
        A key of ``APPLICATION_BACKBONES``.
    adapted_images : KerasTensor
        (N, side, side, 3) symbolic tensor in the backbone's pixel range, side >= 32. Its layers
        and the backbone's share one functional graph.
    weights : "none", "imagenet" or path
        Random initialisation, the ImageNet weights (downloaded into keras' cache if missing), or
        a weights file of the no-top backbone (``.weights.h5``, or a keras ``.h5`` such as the
        ImageNet file itself). The caller checks that a path exists.

    Returns
    -------
    KerasTensor
        (N, h, w, F) output of the last stage, ``APPLICATION_BACKBONES[backbone].stage_names[-1]``.

    Raises
    ------
    BackboneWeightsError
        If ``weights="imagenet"`` and the file can neither be found nor downloaded.
    """
    facts = APPLICATION_BACKBONES[backbone]
    side = int(adapted_images.shape[1])
    if weights == "imagenet":
        # Fetch first, so that a missing network fails fast and clearly; keras then finds the
        # file in its cache and loads it the way it does for "imagenet".
        fetch_imagenet_weights(backbone, side)
        keras_weights = "imagenet"
    else:
        keras_weights = None if weights == "none" else os.fspath(weights)
    constructor = getattr(keras.applications, facts.constructor)
    application = constructor(
        include_top=False, weights=keras_weights, input_tensor=adapted_images
    )
    return application.output
