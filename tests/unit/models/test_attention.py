"""Tests for pixelflip.models.attention: registry, saving, insertion, attention maps."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from pixelflip.models.attention import (
    ATTENTION_MODULES,
    add_attention,
    attention_layer_names,
    attention_maps,
    build_attention_layer,
)
from pixelflip.models.backbones import build_classifier
from pixelflip.models.channel_attention import CBAM, SqueezeExcitation
from pixelflip.models.context_attention import GlobalContext, PositionAttention

MODULES = sorted(ATTENTION_MODULES)


def _tiny_classifier():
    return build_classifier((16, 16, 1), 3, conv_filters=(4, 8), dense_units=8, name="base")


def _randomize(model, seed):
    """Replace every weight (BatchNormalization statistics included) with values no fresh
    initialisation would produce, so that anything that forgets to copy or restore one is caught.
    """
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape) for w in model.get_weights()])


def _randomize_attention(model, seed=7):
    """Small random weights for every attention layer; PAM and GC otherwise start as identity."""
    rng = np.random.default_rng(seed)
    for name in attention_layer_names(model):
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(scale=0.3, size=w.shape) for w in layer.get_weights()])


@pytest.fixture(scope="module")
def base_model():
    model = _tiny_classifier()
    _randomize(model, seed=1)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).uniform(size=(5, 16, 16, 1)).astype("float32")


def test_registry_holds_the_four_modules():
    assert ATTENTION_MODULES == {
        "se": SqueezeExcitation,
        "cbam": CBAM,
        "pam": PositionAttention,
        "gc": GlobalContext,
    }


@pytest.mark.parametrize("module", MODULES)
def test_registry_builds_each_module_with_its_name_and_policy(module):
    layer = build_attention_layer(
        module, reduction_ratio=4, name=f"attention_{module}", dtype="mixed_bfloat16"
    )
    assert type(layer) is ATTENTION_MODULES[module]
    assert layer.name == f"attention_{module}"
    assert layer.reduction_ratio == 4
    assert layer.compute_dtype == "bfloat16"


def test_unknown_module_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'transformer'.*\['cbam', 'gc', 'pam', 'se'\]"):
        build_attention_layer("transformer", reduction_ratio=8)


@pytest.mark.parametrize("module", MODULES)
def test_model_with_attention_saves_and_loads_in_safe_mode(module, base_model, images, tmp_path):
    model = add_attention(base_model, module, reduction_ratio=2)
    # PAM and GC start as the identity; random weights make a lost attention weight visible.
    _randomize_attention(model)
    path = tmp_path / f"{module}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = loaded.get_layer(f"attention_{module}")
    assert type(layer) is ATTENTION_MODULES[module]
    assert layer.get_config() == model.get_layer(f"attention_{module}").get_config()
    np.testing.assert_array_equal(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0)
    )


@pytest.mark.parametrize("module", ["pam", "gc"])
def test_position_and_context_modules_leave_predictions_unchanged_at_insertion(
    module, base_model, images
):
    model = add_attention(base_model, module, placement=["block1", "block2"])
    np.testing.assert_allclose(
        model.predict(images, verbose=0), base_model.predict(images, verbose=0), rtol=1e-6
    )


def _layer_names(model):
    return [layer.name for layer in model.layers]


@pytest.mark.parametrize("module", sorted(ATTENTION_MODULES))
def test_add_attention_inserts_after_the_last_block_by_default(module, base_model):
    model = add_attention(base_model, module)
    names = _layer_names(model)
    attention_name = f"attention_{module}"
    assert names.index(attention_name) == names.index("block2") + 1
    base_names = _layer_names(base_model)
    split = base_names.index("block2") + 1
    assert names == base_names[:split] + [attention_name] + base_names[split:]
    assert model.get_layer("global_pool").input is model.get_layer(attention_name).output
    assert model.output.shape == (None, 3)


def test_add_attention_at_an_earlier_block_feeds_the_next_block(base_model):
    model = add_attention(base_model, "se", placement="block1")
    attention = model.get_layer("attention_se")
    assert attention.input is model.get_layer("block1").output
    assert model.get_layer("block2_conv1").input is attention.output
    assert attention.output.shape == (None, 8, 8, 4)


def test_add_attention_copies_weights_and_leaves_the_base_alone(base_model):
    base_weights = {layer.name: layer.get_weights() for layer in base_model.layers}
    model = add_attention(base_model, "cbam")
    assert model.name == "base_cbam"
    assert len(base_model.layers) == len(base_weights)
    for name, weights in base_weights.items():
        copied = model.get_layer(name)
        assert copied is not base_model.get_layer(name)
        assert len(copied.get_weights()) == len(weights)
        for copy, original in zip(copied.get_weights(), weights):
            np.testing.assert_array_equal(copy, original)
    attention_weights = model.get_layer("attention_cbam").trainable_weights
    assert len(attention_weights) == 6
    assert len(model.trainable_weights) == len(base_model.trainable_weights) + 6
    # Changing the new model must not reach the base model.
    dense = model.get_layer("dense")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
    np.testing.assert_array_equal(
        base_model.get_layer("dense").get_weights()[0], base_weights["dense"][0]
    )


def test_unknown_placement_names_the_blocks(base_model):
    with pytest.raises(ValueError, match=r"'logits'.*\['block1', 'block2'\]"):
        add_attention(base_model, "se", placement="logits")


def test_unknown_module_in_add_attention(base_model):
    with pytest.raises(ValueError, match=r"'danet'.*allowed"):
        add_attention(base_model, "danet")


def test_adding_the_same_module_twice_is_refused(base_model):
    with pytest.raises(ValueError, match="attention_se"):
        add_attention(add_attention(base_model, "se"), "se")


def test_several_placements_insert_one_named_layer_after_each_block(base_model):
    model = add_attention(base_model, "gc", placement=["block2", "block1"], reduction_ratio=2)
    first, second = model.get_layer("attention_gc_block1"), model.get_layer("attention_gc_block2")
    assert attention_layer_names(model) == ["attention_gc_block1", "attention_gc_block2"]
    assert first is not second
    assert first.input is model.get_layer("block1").output
    assert model.get_layer("block2_conv1").input is first.output
    assert second.input is model.get_layer("block2").output
    assert model.get_layer("global_pool").input is second.output
    assert (first.output.shape, second.output.shape) == ((None, 8, 8, 4), (None, 4, 4, 8))
    base_names = [name for name in _layer_names(model) if not name.startswith("attention_")]
    assert base_names == _layer_names(base_model)


def test_one_placement_in_a_list_keeps_the_plain_name(base_model):
    model = add_attention(base_model, "pam", placement=("block1",))
    assert attention_layer_names(model) == ["attention_pam"]
    assert model.get_layer("attention_pam").input is model.get_layer("block1").output


def test_attention_layer_takes_the_dtype_policy_of_its_block():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        base = _tiny_classifier()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model = add_attention(base, "pam", placement=["block1", "block2"])
    for name in attention_layer_names(model):
        assert model.get_layer(name).dtype_policy.name == "mixed_bfloat16"


@pytest.mark.parametrize("module", MODULES)
def test_mixed_bfloat16_model_trains_and_explains(module, images):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = add_attention(_tiny_classifier(), module, placement=["block1", "block2"])
        # Eager: tracing a training graph would cost far more than the step on 5 images.
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
        attention = model.get_layer(f"attention_{module}_block2")
        before = attention.get_weights()
        loss = model.train_on_batch(images, np.array([0, 1, 2, 0, 1]))
        maps = attention_maps(model, images)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(loss)
    after = attention.get_weights()
    assert all(np.all(np.isfinite(weight)) for weight in after)
    # The gradient reached the attention layer through the float32 softmax casts.
    assert any(not np.array_equal(old, new) for old, new in zip(before, after))
    for spatial_map in maps.values():
        assert spatial_map.dtype == np.float32
        assert np.all((spatial_map >= 0.0) & (spatial_map <= 1.0))


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        ("logits", r"'logits'.*\['block1', 'block2'\]"),
        (["block1", "dense"], r"'dense'.*\['block1', 'block2'\]"),
        ([], r"empty.*\['block1', 'block2'\]"),
        (["block2", "block2"], r"twice.*\['block1', 'block2'\]"),
    ],
)
def test_bad_placement_names_the_allowed_blocks(base_model, placement, message):
    with pytest.raises(ValueError, match=message):
        add_attention(base_model, "se", placement=placement)


def test_placement_of_the_wrong_type_is_a_type_error(base_model):
    with pytest.raises(TypeError, match=r"placement=2 is invalid.*\['block1', 'block2'\]"):
        add_attention(base_model, "se", placement=2)


def test_bad_reduction_ratio_in_add_attention(base_model):
    with pytest.raises(ValueError, match="reduction_ratio=0"):
        add_attention(base_model, "cbam", reduction_ratio=0)


def test_adding_the_same_module_after_the_same_blocks_twice_is_refused(base_model):
    model = add_attention(base_model, "cbam", placement=["block1", "block2"])
    with pytest.raises(ValueError, match="attention_cbam_block1"):
        add_attention(model, "cbam", placement=["block1", "block2"])


def test_different_modules_can_be_stacked(base_model):
    model = add_attention(add_attention(base_model, "se", placement="block1"), "pam")
    assert attention_layer_names(model) == ["attention_se", "attention_pam"]


def test_a_model_without_attention_has_no_attention_layers(base_model, images):
    assert attention_layer_names(base_model) == []
    assert attention_maps(base_model, images) == {}


@pytest.mark.parametrize("module", MODULES)
def test_attention_maps_are_image_sized_and_in_unit_interval(module, base_model, images):
    model = add_attention(base_model, module, placement=["block1", "block2"], reduction_ratio=2)
    _randomize_attention(model)
    maps = attention_maps(model, images, batch_size=2)
    assert list(maps) == [f"attention_{module}_block1", f"attention_{module}_block2"]
    for spatial_map in maps.values():
        assert spatial_map.shape == (5, 16, 16)
        assert spatial_map.dtype == np.float32
        assert np.all((spatial_map >= 0.0) & (spatial_map <= 1.0))
        # A map that does not vary over the image would explain nothing.
        assert np.ptp(spatial_map) > 0.0


@pytest.mark.parametrize("module", MODULES)
def test_attention_maps_match_the_layer_method_on_the_layer_input(module, base_model, images):
    model = add_attention(base_model, module, placement=["block1", "block2"], reduction_ratio=2)
    _randomize_attention(model)
    maps = attention_maps(model, images, batch_size=3)
    for name, spatial_map in maps.items():
        layer = model.get_layer(name)
        layer_input = keras.Model(model.input, layer.input)(images, training=False)
        direct = layer.spatial_attention_map(layer_input)
        resized = keras.ops.image.resize(direct, (16, 16), interpolation="bilinear")
        np.testing.assert_allclose(
            spatial_map, keras.ops.convert_to_numpy(resized)[..., 0], rtol=1e-5, atol=1e-6
        )


def test_attention_maps_do_not_depend_on_the_batch_size(base_model, images):
    model = add_attention(base_model, "gc", placement=["block1", "block2"], reduction_ratio=2)
    _randomize_attention(model)
    whole, batched = attention_maps(model, images), attention_maps(model, images, batch_size=2)
    for name in whole:
        np.testing.assert_allclose(batched[name], whole[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"images": np.zeros((16, 16, 1), dtype="float32")}, "expected \\(N, height"),
        ({"batch_size": 0}, "batch_size=0"),
    ],
)
def test_attention_maps_refuses_bad_arguments(base_model, images, arguments, message):
    model = add_attention(base_model, "se")
    with pytest.raises(ValueError, match=message):
        attention_maps(model, **{"images": images, **arguments})
