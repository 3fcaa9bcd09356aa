"""Classifier backbones, attention modules (serializable Keras 3 layers) and training helpers.

Importing this package registers the custom layers, which ``keras.saving.load_model`` needs in
order to load a model that contains them.
"""

from pixelflip.models.attention import (
    ATTENTION_MODULES,
    CBAM,
    GlobalContext,
    PositionAttention,
    SqueezeExcitation,
    add_attention,
    attention_layer_names,
    attention_maps,
    build_attention_layer,
)
from pixelflip.models.backbones import (
    BACKBONES,
    BackboneWeightsError,
    build_classifier,
    feature_block_names,
)
from pixelflip.models.input_adapter import InputAdapter
from pixelflip.models.training import (
    balanced_class_weights,
    compile_classifier,
    count_parameters,
    evaluate_classifier,
    load_classifier,
    measure_inference_ms,
    set_global_seed,
    train_classifier,
)

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
    "balanced_class_weights",
    "build_attention_layer",
    "build_classifier",
    "compile_classifier",
    "count_parameters",
    "evaluate_classifier",
    "feature_block_names",
    "load_classifier",
    "measure_inference_ms",
    "set_global_seed",
    "train_classifier",
]
