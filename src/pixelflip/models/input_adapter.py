"""The layer that turns pixelflip images into what a backbone expects.

Every pixelflip model takes float32 images in [0, 1] with one (greyscale) or three (RGB)
channels, whatever its backbone. A ``keras.applications`` backbone wants three channels, a side of
at least 32 pixels and its own pixel range; :class:`InputAdapter` does that conversion inside the
model, so the counterfactual search, which takes gradients with respect to the [0, 1] image, works
unchanged for every backbone. The layer is registered under the ``pixelflip`` package, so a model
that contains one loads with ``keras.saving.load_model(path, safe_mode=True)`` once this module is
imported.
"""

from __future__ import annotations

import keras
from keras import ops

from pixelflip.config.checks import check_integer

# Each mode maps [0, 1] pixels to the range one family of keras.applications models was trained
# on; "tf" and "caffe" are the modes of keras.applications.imagenet_utils.preprocess_input.
ADAPTER_MODES: dict[str, str] = {
    "unit": "[0, 1], unchanged",
    "pixels": "[0, 255] (backbones that rescale and normalise inside, e.g. EfficientNet)",
    "tf": "[-1, 1] (MobileNetV2)",
    "caffe": "RGB to BGR, [0, 255] minus the ImageNet mean of each channel (ResNet50, VGG16)",
}

# ImageNet channel means in BGR order on the [0, 255] scale, as keras' "caffe" mode subtracts them.
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="pixelflip")
class InputAdapter(keras.layers.Layer):
    """Replicate grey to RGB, resize to a square side and map [0, 1] to a backbone's range.

    Every step is differentiable, so gradients with respect to the [0, 1] input flow through it.

    Parameters
    ----------
    side : int
        Height and width of the output (>= 1). Inputs of another size are resized bilinearly
        (with antialiasing when shrinking, so that thin strokes do not vanish); inputs already
        ``side`` x ``side`` are left as they are.
    to_rgb : bool
        Whether to repeat a single input channel three times. Inputs with three channels pass
        through unchanged either way.
    mode : str
        A key of ``ADAPTER_MODES``: the output range.

    Input shape: (N, H, W, C) float in [0, 1], C = 1 or 3 (any C with ``to_rgb=False``).
    Output shape: (N, side, side, 3 if ``to_rgb`` else C).

    Raises
    ------
    ValueError
        If ``side`` is not a positive integer or ``mode`` is unknown; at build time, if ``mode``
        is "caffe" and the output does not have three channels, or ``to_rgb`` is set and the
        input has neither one nor three channels.
    """

    def __init__(self, side: int, *, to_rgb: bool = True, mode: str = "unit", **kwargs):
        super().__init__(**kwargs)
        check_integer("side", side, minimum=1)
        if mode not in ADAPTER_MODES:
            raise ValueError(
                f"mode={mode!r} is invalid; expected one of {', '.join(ADAPTER_MODES)}."
            )
        self.side = int(side)
        self.to_rgb = bool(to_rgb)
        self.mode = mode

    def _output_channels(self, input_channels: int) -> int:
        return 3 if self.to_rgb else input_channels

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"Layer {self.name!r} received input_shape={tuple(input_shape)!r}; expected "
                "(batch, height, width, channels) with a known channel count."
            )
        channels = int(input_shape[-1])
        if self.to_rgb and channels not in (1, 3):
            raise ValueError(
                f"Layer {self.name!r} received {channels} channels; to_rgb needs greyscale (1) "
                "or RGB (3) images."
            )
        if self.mode == "caffe" and self._output_channels(channels) != 3:
            raise ValueError(
                f"Layer {self.name!r} has mode='caffe', which swaps RGB to BGR, but its output "
                f"has {channels} channels; set to_rgb=True or give it RGB images."
            )
        super().build(input_shape)

    def call(self, inputs):
        images = ops.cast(inputs, self.compute_dtype)
        if self.to_rgb and images.shape[-1] == 1:
            images = ops.repeat(images, 3, axis=-1)
        height, width = images.shape[1], images.shape[2]
        if (height, width) != (self.side, self.side):
            shrinking = height is not None and width is not None and self.side < max(height, width)
            images = ops.image.resize(
                images, (self.side, self.side), interpolation="bilinear", antialias=shrinking
            )
        if self.mode == "unit":
            return images
        pixels = images * 255.0
        if self.mode == "tf":
            return pixels / 127.5 - 1.0
        if self.mode == "caffe":
            # Reversing the channel axis turns RGB into BGR, the order the Caffe weights use.
            return ops.flip(pixels, axis=-1) - ops.convert_to_tensor(
                CAFFE_BGR_MEANS, dtype=self.compute_dtype
            )
        return pixels

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.side, self.side, self._output_channels(input_shape[-1]))

    def get_config(self):
        config = super().get_config()
        config.update({"side": self.side, "to_rgb": self.to_rgb, "mode": self.mode})
        return config
