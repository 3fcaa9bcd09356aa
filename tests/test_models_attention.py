"""Tests for pixelflip.models.attention: SE and CBAM layers, saving, insertion into a backbone."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pixelflip.models.attention import (  # noqa: E402
    ATTENTION_MODULES,
    CBAM,
    SqueezeExcitation,
    add_attention,
    build_attention_layer,
)
from pixelflip.models.backbones import build_classifier  # noqa: E402


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(0).normal(size=(3, 5, 5, 16)).astype("float32")


@pytest.fixture(scope="module")
def base_model():
    model = build_classifier((12, 12, 1), 3, conv_filters=(8, 16), dense_units=8, name="base")
    # Replace every weight (BatchNormalization statistics included) with values no fresh
    # initialisation would produce, so that a clone that forgot to copy weights is caught.
    rng = np.random.default_rng(1)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape) for w in model.get_weights()])
    return model


def test_squeeze_excitation_scales_each_channel_by_a_factor_in_unit_interval(features):
    layer = SqueezeExcitation(reduction_ratio=4)
    outputs = keras.ops.convert_to_numpy(layer(features))
    factors = keras.ops.convert_to_numpy(layer.channel_weights(features))
    assert outputs.shape == features.shape
    assert factors.shape == (3, 16)
    assert np.all((factors >= 0.0) & (factors <= 1.0))
    np.testing.assert_allclose(outputs, features * factors[:, None, None, :], rtol=1e-5, atol=1e-6)
    # The bottleneck has C / r = 4 hidden units.
    assert [tuple(w.shape) for w in layer.weights] == [(16, 4), (4,), (4, 16), (16,)]


@pytest.mark.parametrize("layer_class", [SqueezeExcitation, CBAM])
def test_fewer_channels_than_the_ratio_still_get_one_hidden_unit(layer_class):
    layer = layer_class(reduction_ratio=8)
    outputs = layer(np.ones((2, 4, 4, 4), dtype="float32"))
    assert outputs.shape == (2, 4, 4, 4)
    assert tuple(layer.weights[0].shape) == (4, 1)


def test_channel_weights_builds_the_layer_on_first_use(features):
    layer = SqueezeExcitation(reduction_ratio=8)
    assert layer.weights == []
    assert keras.ops.convert_to_numpy(layer.channel_weights(features)).shape == (3, 16)
    assert len(layer.weights) == 4


def test_cbam_applies_channel_then_spatial_attention(features):
    layer = CBAM(reduction_ratio=4, kernel_size=3)
    outputs = keras.ops.convert_to_numpy(layer(features))
    spatial_map = keras.ops.convert_to_numpy(layer.spatial_attention_map(features))
    factors = keras.ops.convert_to_numpy(layer.channel_weights(features))
    assert outputs.shape == features.shape
    assert spatial_map.shape == (3, 5, 5, 1)
    assert np.all((spatial_map >= 0.0) & (spatial_map <= 1.0))
    assert np.all((factors >= 0.0) & (factors <= 1.0))
    expected = features * factors[:, None, None, :] * spatial_map
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    assert tuple(layer.spatial_conv.kernel.shape) == (3, 3, 2, 1)


@pytest.mark.parametrize(
    "layer",
    [SqueezeExcitation(reduction_ratio=2, name="se"), CBAM(reduction_ratio=2, kernel_size=5)],
)
def test_config_round_trip(layer):
    config = layer.get_config()
    assert config["reduction_ratio"] == 2
    assert type(layer).from_config(config).get_config() == config


def test_registry_builds_each_module_with_its_name():
    assert set(ATTENTION_MODULES) == {"se", "cbam"}
    layer = build_attention_layer("cbam", reduction_ratio=4, name="attention_cbam")
    assert isinstance(layer, CBAM)
    assert layer.name == "attention_cbam"
    assert layer.reduction_ratio == 4


def test_unknown_module_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'transformer'.*\['cbam', 'se'\]"):
        build_attention_layer("transformer", reduction_ratio=8)


@pytest.mark.parametrize("argument", [0, -2, 2.5, "8"])
def test_bad_reduction_ratio_raises_value_error(argument):
    with pytest.raises(ValueError, match="reduction_ratio"):
        SqueezeExcitation(reduction_ratio=argument)


@pytest.mark.parametrize("module", sorted(ATTENTION_MODULES))
def test_model_with_attention_saves_and_loads_in_safe_mode(module, base_model, tmp_path):
    model = add_attention(base_model, module, reduction_ratio=4)
    images = np.random.default_rng(2).uniform(size=(4, 12, 12, 1)).astype("float32")
    path = tmp_path / f"{module}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer(f"attention_{module}"), ATTENTION_MODULES[module])
    np.testing.assert_array_equal(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0)
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
    assert attention.output.shape == (None, 6, 6, 8)


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
    with pytest.raises(ValueError, match="allowed"):
        add_attention(base_model, "pam")


def test_adding_the_same_module_twice_is_refused(base_model):
    with pytest.raises(ValueError, match="attention_se"):
        add_attention(add_attention(base_model, "se"), "se")
