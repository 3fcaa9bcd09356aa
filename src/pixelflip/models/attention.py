"""Attention modules: the registry, insertion into a trained backbone, and attention maps.

The layers live in :mod:`pixelflip.models.channel_attention` (SE, CBAM) and
:mod:`pixelflip.models.context_attention` (PAM, GC) and are re-exported here. Every one is
registered under the ``pixelflip`` package, so a model that contains one loads with
``keras.saving.load_model(path, safe_mode=True)`` once this module is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from pixelflip.config.checks import check_integer
from pixelflip.models.backbones import feature_block_names
from pixelflip.models.channel_attention import CBAM, SqueezeExcitation, _AttentionLayer
from pixelflip.models.context_attention import GlobalContext, PositionAttention

__all__ = [
    "ATTENTION_MODULES",
    "CBAM",
    "GlobalContext",
    "PositionAttention",
    "SqueezeExcitation",
    "add_attention",
    "attention_layer_names",
    "attention_maps",
    "build_attention_layer",
]

# A registry, so that new modules only need an entry here to become available to
# build_attention_layer, add_attention and the attention stage.
ATTENTION_MODULES: dict[str, type[keras.layers.Layer]] = {
    "se": SqueezeExcitation,
    "cbam": CBAM,
    "pam": PositionAttention,
    "gc": GlobalContext,
}


def build_attention_layer(
    module: str, *, reduction_ratio: int, name: str | None = None, dtype=None
) -> keras.layers.Layer:
    """Instantiate the attention layer registered as ``module`` (a key of ``ATTENTION_MODULES``).

    ``dtype`` is a dtype policy (name or ``keras.DTypePolicy``); None uses the global policy.

    Raises
    ------
    ValueError
        If ``module`` is not a key of ``ATTENTION_MODULES`` or ``reduction_ratio`` is not an
        integer >= 1.
    """
    return _module_class(module)(reduction_ratio=reduction_ratio, name=name, dtype=dtype)


def _module_class(module: str) -> type[keras.layers.Layer]:
    if module not in ATTENTION_MODULES:
        raise ValueError(
            f"module={module!r} is not a known attention module; allowed: "
            f"{sorted(ATTENTION_MODULES)}."
        )
    return ATTENTION_MODULES[module]


def _resolve_placements(
    base_model: keras.Model, placement: str | Sequence[str] | None
) -> list[str]:
    block_names = feature_block_names(base_model)
    if not block_names:
        raise ValueError(
            f"Model {base_model.name!r} has no feature blocks that feature_block_names "
            "recognises; build it with pixelflip.models.backbones."
        )
    if placement is None:
        return [block_names[-1]]
    if not isinstance(placement, (str, Sequence)):
        raise TypeError(
            f"placement={placement!r} is invalid; give None (the last block), one block name or "
            f"a list of them; allowed: {block_names}."
        )
    placements = [placement] if isinstance(placement, str) else list(placement)
    if not placements:
        raise ValueError(
            f"placement=[] is empty; give None (the last block), one block name or a list of "
            f"them; allowed: {block_names}."
        )
    for block in placements:
        if block not in block_names:
            raise ValueError(
                f"placement={block!r} is not a feature block of model {base_model.name!r}; "
                f"allowed: {block_names}."
            )
    if len(set(placements)) != len(placements):
        raise ValueError(
            f"placement={placements!r} names a block twice; list each block once "
            f"(allowed: {block_names})."
        )
    return placements


def add_attention(
    base_model: keras.Model,
    module: str,
    *,
    placement: str | Sequence[str] | None = None,
    reduction_ratio: int = 8,
) -> keras.Model:
    """Return a new model equal to ``base_model`` with attention layers after feature blocks.

    Parameters
    ----------
    base_model : keras.Model
        A functional model whose feature blocks
        :func:`pixelflip.models.backbones.feature_block_names` recognises. It is not modified.
    module : str
        Key of ``ATTENTION_MODULES``.
    placement : str, sequence of str or None
        Feature block(s) after which a layer goes, one layer per block; None means the last
        block.
    reduction_ratio : int
        Channel reduction ratio of the attention layers.

    Returns
    -------
    keras.Model
        A clone of ``base_model`` (new layer objects holding copies of its weights, matched by
        layer name) with freshly initialised attention layers, each taking the dtype policy of
        the block it follows. With one placement the layer is named ``attention_<module>``; with
        several, ``attention_<module>_<block>``. The clone is not compiled.

    Raises
    ------
    ValueError
        If ``module`` is unknown, a placement is not a feature block (the message lists the
        allowed blocks), a block is named twice, or the model already has a layer of that name.
    TypeError
        If ``placement`` is neither None, a string nor a sequence of strings.
    """
    # Both checked before any cloning work starts.
    _module_class(module)
    check_integer("reduction_ratio", reduction_ratio, minimum=1)
    placements = _resolve_placements(base_model, placement)
    layer_names = {
        block: f"attention_{module}" if len(placements) == 1 else f"attention_{module}_{block}"
        for block in placements
    }
    existing_names = {layer.name for layer in base_model.layers}
    for layer_name in layer_names.values():
        if layer_name in existing_names:
            raise ValueError(
                f"Model {base_model.name!r} already has a layer named {layer_name!r}; add each "
                "attention module after a block only once."
            )
    attention_layers = {
        block: build_attention_layer(
            module,
            reduction_ratio=reduction_ratio,
            name=layer_name,
            dtype=base_model.get_layer(block).dtype_policy,
        )
        for block, layer_name in layer_names.items()
    }

    def call_with_attention(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        attention_layer = attention_layers.get(layer.name)
        return outputs if attention_layer is None else attention_layer(outputs)

    # Cloning instead of rewiring the base layers keeps fine-tuning of the new model from
    # changing the base model that later stages still compare against.
    cloned = keras.models.clone_model(base_model, call_function=call_with_attention)
    for layer in base_model.layers:
        cloned.get_layer(layer.name).set_weights(layer.get_weights())
    # Rebuilt only to give it its own name; input/output keep the base model's structure.
    return keras.Model(cloned.input, cloned.output, name=f"{base_model.name}_{module}")


def attention_layer_names(model: keras.Model) -> list[str]:
    """Names of the attention layers among ``model.layers``, in graph (topological) order.

    Only top-level layers count; an attention layer inside a nested model is not listed.
    """
    return [layer.name for layer in model.layers if isinstance(layer, _AttentionLayer)]


def _resize_to(maps, height: int, width: int) -> np.ndarray:
    """(N, h, w, 1) maps in [0, 1] -> (N, height, width) float32 in [0, 1], bilinear."""
    resized = ops.image.resize(ops.cast(maps, "float32"), (height, width), interpolation="bilinear")
    # Bilinear weights are convex, so only float rounding could step outside [0, 1].
    return np.clip(ops.convert_to_numpy(resized)[..., 0], 0.0, 1.0).astype("float32")


def attention_maps(model: keras.Model, images, *, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Spatial attention map of every attention layer of ``model``, at image resolution.

    Each layer's :meth:`spatial_attention_map` is evaluated on that layer's actual input in the
    model (one forward pass per batch through a sub-model to all attention-layer inputs, in
    inference mode) and resized bilinearly to the image height and width.

    Parameters
    ----------
    model : keras.Model
        A functional model, e.g. the output of :func:`add_attention`; its attention layers are
        those of :func:`attention_layer_names`.
    images : array-like, shape (N, H, W, C)
        Float32 images in [0, 1], as the model takes them.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    dict of str to numpy.ndarray
        Attention-layer name -> (N, H, W) float32 maps in [0, 1], in graph order; empty for a
        model without attention layers (such as the base model).

    Raises
    ------
    ValueError
        If ``images`` is not 4-D or ``batch_size`` is not an integer >= 1.
    """
    batch_size = check_integer("batch_size", batch_size, minimum=1)
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"images has shape {images.shape}; expected (N, height, width, channels).")
    names = attention_layer_names(model)
    if not names:
        return {}
    layers = [model.get_layer(name) for name in names]
    feature_model = keras.Model(model.input, [layer.input for layer in layers])
    height, width = images.shape[1:3]
    batches: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, len(images), batch_size):
        features = feature_model(images[start : start + batch_size], training=False)
        if not isinstance(features, (list, tuple)):
            features = [features]
        for layer, layer_input in zip(layers, features):
            spatial_map = layer.spatial_attention_map(layer_input)
            batches[layer.name].append(_resize_to(spatial_map, height, width))
    empty = np.zeros((0, height, width), dtype="float32")
    return {name: np.concatenate(parts) if parts else empty for name, parts in batches.items()}
