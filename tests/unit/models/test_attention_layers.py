"""Tests for the attention layers themselves: SE, CBAM, PAM (DANet) and GC (GCNet)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from pixelflip.models.channel_attention import CBAM, SqueezeExcitation
from pixelflip.models.context_attention import GlobalContext, PositionAttention

LAYER_CLASSES = [SqueezeExcitation, CBAM, PositionAttention, GlobalContext]


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype="float32")


def _randomize_weights(layer, *, scale=0.5, seed=3):
    """Give every weight a value no initialiser produces (PAM and GC start as the identity)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=scale, size=w.shape) for w in layer.get_weights()])


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(0).normal(size=(3, 5, 5, 16)).astype("float32")


@pytest.fixture
def built(features):
    """An instance of the requested class built on ``features`` with randomised weights."""

    def make(layer_class, **kwargs):
        layer = layer_class(reduction_ratio=4, **kwargs)
        layer.build(features.shape)
        _randomize_weights(layer)
        return layer

    return make


@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_output_has_the_input_shape(layer_class, features):
    layer = layer_class(reduction_ratio=4)
    assert tuple(layer(features).shape) == features.shape
    assert layer.compute_output_shape((None, 5, 5, 16)) == (None, 5, 5, 16)


@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_spatial_attention_map_is_one_float32_channel_in_unit_interval(
    layer_class, built, features
):
    spatial_map = built(layer_class).spatial_attention_map(features)
    assert keras.backend.standardize_dtype(spatial_map.dtype) == "float32"
    values = _numpy(spatial_map)
    assert values.shape == (3, 5, 5, 1)
    assert np.all((values >= 0.0) & (values <= 1.0))
    # Every module's map reaches 1 somewhere in each image except CBAM's, which is unscaled.
    if layer_class is not CBAM:
        np.testing.assert_allclose(values.max(axis=(1, 2, 3)), 1.0, rtol=1e-6)


@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_inspection_methods_build_the_layer_on_first_use(layer_class, features):
    layer = layer_class(reduction_ratio=8)
    assert layer.weights == []
    assert _numpy(layer.spatial_attention_map(features)).shape == (3, 5, 5, 1)
    assert len(layer.weights) > 0


@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_config_round_trip(layer_class):
    layer = layer_class(reduction_ratio=2, name="attention")
    config = layer.get_config()
    assert config["reduction_ratio"] == 2
    assert layer_class.from_config(config).get_config() == config
    registered = keras.saving.get_registered_name(layer_class)
    assert registered == f"pixelflip>{layer_class.__name__}"


def test_cbam_kernel_size_is_in_its_config():
    config = CBAM(reduction_ratio=2, kernel_size=5).get_config()
    assert config["kernel_size"] == 5
    assert CBAM.from_config(config).kernel_size == 5


@pytest.mark.parametrize("argument", [0, -2, 2.5, "8", True])
@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_bad_reduction_ratio_raises_value_error(layer_class, argument):
    with pytest.raises(ValueError, match="reduction_ratio"):
        layer_class(reduction_ratio=argument)


@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_input_without_channels_axis_is_refused(layer_class):
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        layer_class().build((None, 5, 16))


REDUCING_KERNEL = {
    SqueezeExcitation: lambda layer: layer.channel_mlp.hidden.kernel,
    CBAM: lambda layer: layer.channel_mlp.hidden.kernel,
    PositionAttention: lambda layer: layer.query_conv.kernel,
    GlobalContext: lambda layer: layer.transform_reduce.kernel,
}


@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_fewer_channels_than_the_ratio_still_get_one_hidden_unit(layer_class):
    layer = layer_class(reduction_ratio=8)
    outputs = layer(np.ones((2, 4, 4, 4), dtype="float32"))
    assert outputs.shape == (2, 4, 4, 4)
    # 4 channels // 8 would be 0; the reducing projection keeps one unit.
    assert tuple(REDUCING_KERNEL[layer_class](layer).shape)[-2:] == (4, 1)


def test_squeeze_excitation_scales_each_channel_by_a_factor_in_unit_interval(features):
    layer = SqueezeExcitation(reduction_ratio=4)
    outputs = _numpy(layer(features))
    factors = _numpy(layer.channel_weights(features))
    assert factors.shape == (3, 16)
    assert np.all((factors >= 0.0) & (factors <= 1.0))
    np.testing.assert_allclose(outputs, features * factors[:, None, None, :], rtol=1e-5, atol=1e-6)
    # The bottleneck has C / r = 4 hidden units.
    assert [tuple(w.shape) for w in layer.weights] == [(16, 4), (4,), (4, 16), (16,)]


def test_squeeze_excitation_map_is_the_min_max_normalised_channel_mean_of_its_output(
    built, features
):
    layer = built(SqueezeExcitation)
    channel_mean = _numpy(layer(features)).mean(axis=-1, keepdims=True)
    lowest = channel_mean.min(axis=(1, 2, 3), keepdims=True)
    highest = channel_mean.max(axis=(1, 2, 3), keepdims=True)
    expected = (channel_mean - lowest) / (highest - lowest)
    np.testing.assert_allclose(_numpy(layer.spatial_attention_map(features)), expected, atol=1e-5)


def test_squeeze_excitation_map_of_a_flat_image_is_zero_not_nan():
    layer = SqueezeExcitation(reduction_ratio=4)
    flat = np.full((1, 3, 3, 8), 0.5, dtype="float32")
    np.testing.assert_array_equal(_numpy(layer.spatial_attention_map(flat)), 0.0)


def test_cbam_applies_channel_then_spatial_attention(features):
    layer = CBAM(reduction_ratio=4, kernel_size=3)
    outputs = _numpy(layer(features))
    spatial_map = _numpy(layer.spatial_attention_map(features))
    factors = _numpy(layer.channel_weights(features))
    assert np.all((spatial_map >= 0.0) & (spatial_map <= 1.0))
    assert np.all((factors >= 0.0) & (factors <= 1.0))
    expected = features * factors[:, None, None, :] * spatial_map
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    assert tuple(layer.spatial_conv.kernel.shape) == (3, 3, 2, 1)


def _flat(tensor):
    values = _numpy(tensor)
    return values.reshape(values.shape[0], -1, values.shape[-1])


def test_position_attention_starts_as_the_exact_identity(features):
    layer = PositionAttention(reduction_ratio=4)
    np.testing.assert_array_equal(_numpy(layer(features)), features)
    assert float(_numpy(layer.gamma)) == 0.0
    # gamma, then query and key (16 -> 16 // 4 channels), then value (16 -> 16).
    assert [tuple(w.shape) for w in layer.trainable_weights] == [
        (),
        (1, 1, 16, 4),
        (4,),
        (1, 1, 16, 4),
        (4,),
        (1, 1, 16, 16),
        (16,),
    ]


def test_position_attention_rows_are_a_softmax_of_query_key_energies(built, features):
    layer = built(PositionAttention)
    attention = _numpy(layer.attention_matrix(features))
    assert attention.shape == (3, 25, 25)
    np.testing.assert_allclose(attention.sum(axis=-1), 1.0, rtol=1e-5)
    energy = _flat(layer.query_conv(features)) @ _flat(layer.key_conv(features)).transpose(0, 2, 1)
    expected = np.exp(energy - energy.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(attention, expected, rtol=1e-4, atol=1e-6)


def test_position_attention_adds_gamma_times_attended_values(built, features):
    layer = built(PositionAttention)
    layer.gamma.assign(0.7)
    attended = _numpy(layer.attention_matrix(features)) @ _flat(layer.value_conv(features))
    expected = features + 0.7 * attended.reshape(features.shape)
    np.testing.assert_allclose(_numpy(layer(features)), expected, rtol=1e-4, atol=1e-5)


def test_position_attention_map_is_the_attention_each_position_receives(built, features):
    layer = built(PositionAttention)
    received = _numpy(layer.attention_matrix(features)).mean(axis=1)
    expected = (received / received.max(axis=1, keepdims=True)).reshape(3, 5, 5, 1)
    np.testing.assert_allclose(_numpy(layer.spatial_attention_map(features)), expected, rtol=1e-5)


def test_global_context_weights_sum_to_one_over_positions(built, features):
    layer = built(GlobalContext)
    weights = _numpy(layer.context_weights(features))
    assert weights.shape == (3, 25)
    assert np.all(weights > 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    expected_map = (weights / weights.max(axis=1, keepdims=True)).reshape(3, 5, 5, 1)
    np.testing.assert_allclose(_numpy(layer.spatial_attention_map(features)), expected_map)


def test_global_context_adds_one_transformed_context_vector_at_every_position(built, features):
    layer = built(GlobalContext)
    added = _numpy(layer(features)) - features
    # The same vector at every position of an image, different between images.
    np.testing.assert_allclose(added, np.broadcast_to(added[:, :1, :1, :], added.shape), atol=1e-5)
    assert not np.allclose(added[0, 0, 0], added[1, 0, 0])
    context = np.einsum("np,npc->nc", _numpy(layer.context_weights(features)), _flat(features))
    hidden = keras.ops.relu(layer.transform_norm(layer.transform_reduce(context)))
    np.testing.assert_allclose(added[:, 0, 0, :], _numpy(layer.transform_expand(hidden)), atol=1e-5)


def test_global_context_starts_as_the_identity(features):
    layer = GlobalContext(reduction_ratio=4)
    np.testing.assert_array_equal(_numpy(layer(features)), features)
    assert len(layer.trainable_weights) == 8


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("layer_class", LAYER_CLASSES)
def test_layers_compute_in_the_mixed_precision_dtype(policy, layer_class, features):
    keras.mixed_precision.set_global_policy(policy)
    try:
        layer = layer_class(reduction_ratio=4)
        layer.build(features.shape)
        # Small weights as after training: with large ones PAM's energies are so big that the
        # rounding of half-precision queries and keys alone moves its softmax by more than 5%.
        _randomize_weights(layer, scale=0.2)
        outputs = layer(features)
        spatial_map = layer.spatial_attention_map(features)
        compute_dtype = keras.mixed_precision.global_policy().compute_dtype
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(outputs.dtype) == compute_dtype
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    reference = layer_class(reduction_ratio=4)
    reference.build(features.shape)
    reference.set_weights(layer.get_weights())
    # Half precision keeps about 3 significant digits (bfloat16) or 4 (float16).
    np.testing.assert_allclose(_numpy(outputs), _numpy(reference(features)), rtol=0.05, atol=0.05)
    values = _numpy(spatial_map)
    assert keras.backend.standardize_dtype(spatial_map.dtype) == "float32"
    assert np.all((values >= 0.0) & (values <= 1.0))
    np.testing.assert_allclose(
        values, _numpy(reference.spatial_attention_map(features)), rtol=0.05, atol=0.05
    )


@pytest.mark.parametrize("layer_class", [PositionAttention, GlobalContext])
def test_softmax_weights_stay_normalised_in_bfloat16(layer_class, features):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = layer_class(reduction_ratio=4)
        layer.build(features.shape)
        _randomize_weights(layer)
        # Large inputs make the energies large: a bfloat16 softmax would lose the small weights.
        loud = features * 30.0
        weights = (
            layer.attention_matrix(loud)
            if layer_class is PositionAttention
            else layer.context_weights(loud)
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    values = _numpy(weights)
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(values.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("layer_class", [PositionAttention, GlobalContext])
def test_a_single_position_gets_all_the_weight(layer_class, recwarn):
    layer = layer_class(reduction_ratio=4)
    single = np.random.default_rng(4).normal(size=(2, 1, 1, 8)).astype("float32")
    assert _numpy(layer(single)).shape == (2, 1, 1, 8)
    np.testing.assert_array_equal(_numpy(layer.spatial_attention_map(single)), 1.0)
    assert not [warning for warning in recwarn if "softmax" in str(warning.message)]
