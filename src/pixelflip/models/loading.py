"""Loading a classifier the pipeline saved, custom layers included, in the precision asked for.

A model trained with ``train.mixed_precision: true`` is saved with its layers' dtype policies
(``mixed_bfloat16`` on CPU, ``mixed_float16`` on GPU), so loaded as it is it computes in half
precision. Its variables are float32 either way, so the same model computes in float32 once its
layers are rebuilt with ``float32`` policies and given the same weights: the same function up to
the half-precision rounding. :func:`load_classifier` does that by default, because every
explanation (gradients, logit margins, probabilities near 0 and 1) needs float32;
:func:`with_compute_dtype` does it for a model already in memory, and
:func:`reduced_precision_layers` tells whether a model needs it.
"""

from __future__ import annotations

from typing import Any

import keras

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
_HALF_DTYPES = ("bfloat16", "float16")
# How Keras 3 serialises a layer's (unquantised) dtype policy inside a model's config.
_POLICY_CLASS_NAMES = ("DTypePolicy", "FloatDTypePolicy")


def load_classifier(path, *, compute_dtype: str = "float32") -> keras.Model:
    """Load a ``.keras`` classifier saved by the pipeline, attention layers included.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.keras`` file written by the ``train`` or ``attention`` stage.
    compute_dtype : {"float32", "bfloat16", "float16"}, default "float32"
        The dtype the loaded model computes in; see :func:`with_compute_dtype`. Explanations
        and evaluation use the default; a stage that goes on training the model passes the
        compute dtype of the global policy its ``train.mixed_precision`` set.

    Returns
    -------
    keras.Model
        Maps (N, H, W, C) float32 images in [0, 1] to (N, K) float32 probabilities. The model as
        saved (compiled) when its layers already compute in ``compute_dtype``, else an
        uncompiled rebuild holding the same weights.

    Raises
    ------
    ValueError
        If ``compute_dtype`` is not one of ``COMPUTE_DTYPES``, or the file is missing or not a
        whole ``.keras`` archive (:class:`pixelflip.stage.inputs.InputFileError`).
    """
    _check_compute_dtype(compute_dtype)
    from pixelflip.stage.inputs import check_model_file

    # Keras says "File not found" for a truncated .keras that exists; this names the file,
    # what is wrong and the stage that rebuilds it.
    check_model_file(path)
    # The attention layers are registered when their module is imported; a stage that only
    # loads models would otherwise fail with "Could not locate class 'SqueezeExcitation'".
    from pixelflip.models import attention  # noqa: F401

    return with_compute_dtype(keras.saving.load_model(path, safe_mode=True), compute_dtype)


def reduced_precision_layers(model: keras.Model) -> dict[str, str]:
    """Layer name -> dtype policy name of every layer of ``model`` computing in half precision.

    Layers nested in sub-models and in custom layers (the attention modules' own Dense and Conv2D
    layers) count; models and input layers do not, whatever their policy: they compute nothing
    themselves. Empty for a model that computes in float32 throughout.
    """
    return {layer.name: layer.dtype_policy.name
            for layer in model._flatten_layers(include_self=False)
            if not isinstance(layer, (keras.Model, keras.layers.InputLayer))
            and layer.dtype_policy.compute_dtype in _HALF_DTYPES}


def with_compute_dtype(model: keras.Model, compute_dtype: str = "float32") -> keras.Model:
    """``model`` with every layer that computes in half precision computing in ``compute_dtype``.

    With ``"float32"`` every half-precision policy becomes ``float32``; with ``"bfloat16"`` or
    ``"float16"`` it becomes ``mixed_bfloat16`` or ``mixed_float16`` (a model trained on a GPU
    in float16 goes on training in bfloat16 on a CPU). Layers that compute in float32 on purpose
    under mixed precision (the input adapter, the softmax) keep float32, and a model trained in
    float32 is returned as it is: nothing tells which of its layers could compute in half
    precision.

    Parameters
    ----------
    model : keras.Model
        A functional or sequential model whose layers (nested models and the pixelflip attention
        layers included) serialise with ``get_config``.
    compute_dtype : {"float32", "bfloat16", "float16"}, default "float32"

    Returns
    -------
    keras.Model
        ``model`` itself when no policy changes; otherwise an uncompiled model rebuilt from its
        config with the new policies, holding copies of its weights (float32 variables already
        under mixed precision, so nothing is rounded).

    Raises
    ------
    ValueError
        If ``compute_dtype`` is not one of ``COMPUTE_DTYPES``.
    """
    _check_compute_dtype(compute_dtype)
    config, replaced = _replace_policies(keras.saving.serialize_keras_object(model),
                                         compute_dtype)
    if not replaced:
        return model
    # Rebuilt uncompiled: its optimizer (a LossScaleOptimizer under float16) belongs to the old
    # precision, and whoever trains the model compiles it anyway.
    config.pop("compile_config", None)
    # Under the target's global policy, so that anything a layer builds without an explicit
    # dtype (the model's own policy included) takes the target too.
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(_target_policy(compute_dtype))
    try:
        rebuilt = keras.saving.deserialize_keras_object(config, safe_mode=True)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _check_compute_dtype(compute_dtype: Any) -> None:
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(
            f"compute_dtype={compute_dtype!r} is invalid; expected one of {list(COMPUTE_DTYPES)}."
        )


def _target_policy(compute_dtype: str) -> str:
    # Variables stay float32 in every case: weights are copied, never rounded.
    return "float32" if compute_dtype == "float32" else f"mixed_{compute_dtype}"


def _replace_policies(config: Any, compute_dtype: str) -> tuple[Any, int]:
    """A copy of a serialised model ``config`` with its half-precision policies replaced, and
    how many were replaced. Tensor dtypes in the config (an input's, a node's) are left alone:
    deserialisation recomputes them from the layers."""
    if isinstance(config, list):
        replaced_items = [_replace_policies(item, compute_dtype) for item in config]
        return [item for item, _ in replaced_items], sum(count for _, count in replaced_items)
    if not isinstance(config, dict):
        return config, 0
    if config.get("class_name") in _POLICY_CLASS_NAMES and config.get("module") == "keras":
        name = config["config"]["name"]
        if keras.DTypePolicy(name).compute_dtype not in _HALF_DTYPES:
            return config, 0
        target = _target_policy(compute_dtype)
        return {**config, "config": {**config["config"], "name": target}}, int(name != target)
    copied, replaced = {}, 0
    for key, value in config.items():
        copied[key], count = _replace_policies(value, compute_dtype)
        replaced += count
    return copied, replaced
