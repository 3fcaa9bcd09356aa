"""Classifier architectures: backbones and attention modules (serializable Keras 3 layers).

Importing this package registers the custom layers, which ``keras.saving.load_model`` needs in
order to load a model that contains them.
"""

from pixelflip.models.attention import (
    ATTENTION_MODULES,
    add_attention,
    attention_layer_names,
    attention_maps,
    build_attention_layer,
)
from pixelflip.models.backbones import BACKBONES, build_classifier, feature_block_names
from pixelflip.models.channel_attention import CBAM, SqueezeExcitation
from pixelflip.models.context_attention import GlobalContext, PositionAttention
from pixelflip.models.input_adapter import InputAdapter
from pixelflip.models.loading import load_classifier
from pixelflip.models.zoo import BackboneWeightsError

__all__ = [
    "ATTENTION_MODULES",
    "BACKBONES",
    "CBAM",
    "BackboneWeightsError",
    "GlobalContext",
    "InputAdapter",
    "PositionAttention",
    "SqueezeExcitation",
    "add_attention",
    "attention_layer_names",
    "attention_maps",
    "build_attention_layer",
    "build_classifier",
    "feature_block_names",
    "load_classifier",
]
