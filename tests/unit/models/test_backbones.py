"""Tests for pixelflip.models.backbones: every backbone, the shared head, weights and block names."""

import functools
import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelflip.models import add_attention
from pixelflip.models.attention import ATTENTION_MODULES
from pixelflip.models.backbones import (
    BACKBONES,
    HEAD_LAYER_NAMES,
    OWN_BACKBONES,
    build_classifier,
    feature_block_names,
)
from pixelflip.models.input_adapter import InputAdapter
from pixelflip.models.zoo import APPLICATION_BACKBONES

APPLICATIONS = list(APPLICATION_BACKBONES)

# Greyscale digits smaller than any application's minimum side, and RGB photos above it.
SHAPES = {"grey": (28, 28, 1), "rgb": (40, 40, 3)}


@functools.cache
def application_model(backbone: str, shape_name: str) -> keras.Model:
    """One application classifier per (backbone, input shape), shared by the tests below."""
    return build_classifier(SHAPES[shape_name], 3, backbone=backbone, dense_units=8)


def predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    # A direct call instead of model.predict: no tf.function to trace for a batch of two.
    return keras.ops.convert_to_numpy(model(images, training=False))


def random_images(shape, *, count=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(count, *shape)).astype("float32")


def weights_by_layer(model: keras.Model, layer_names) -> dict[str, list[np.ndarray]]:
    return {name: model.get_layer(name).get_weights() for name in layer_names}


def assert_same_layer_weights(reference: keras.Model, model: keras.Model) -> None:
    """Every weighted layer of ``reference`` exists in ``model`` with equal weights."""
    weighted = [layer.name for layer in reference.layers if layer.weights]
    assert weighted, "the reference model has no weights to compare"
    expected = weights_by_layer(reference, weighted)
    actual = weights_by_layer(model, weighted)
    for name in weighted:
        assert len(actual[name]) == len(expected[name])
        for got, want in zip(actual[name], expected[name], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)


# --- simple_cnn -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier():
    return build_classifier((12, 12, 1), 3, conv_filters=(4, 8), dense_units=8, name="tiny")


def test_outputs_are_probabilities_of_each_class(classifier):
    probabilities = classifier.predict(random_images((12, 12, 1), count=5), verbose=0)
    assert probabilities.shape == (5, 3)
    assert np.all(probabilities >= 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert classifier.name == "tiny"


def test_logits_layer_feeds_the_softmax(classifier):
    images = random_images((12, 12, 1), count=4, seed=1)
    logits_model = keras.Model(classifier.inputs, classifier.get_layer("logits").output)
    logits = logits_model.predict(images, verbose=0)
    assert logits.shape == (4, 3)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(classifier.predict(images, verbose=0), expected, rtol=1e-5)
    assert classifier.get_layer("probabilities").output.shape == (None, 3)


def test_each_block_ends_in_a_named_pooling_layer(classifier):
    assert feature_block_names(classifier) == ["block1", "block2"]
    assert classifier.get_layer("block1").output.shape == (None, 6, 6, 4)
    assert classifier.get_layer("block2").output.shape == (None, 3, 3, 8)
    assert isinstance(classifier.get_layer("block2"), keras.layers.MaxPooling2D)
    # The images reach the first block as they are: no adapter unless input_size asks for one.
    assert not any(isinstance(layer, InputAdapter) for layer in classifier.layers)


def test_feature_block_names_follow_the_number_of_blocks():
    model = build_classifier((16, 16, 3), 2, conv_filters=(2, 2, 2, 2), dense_units=4)
    assert feature_block_names(model) == ["block1", "block2", "block3", "block4"]
    assert model.get_layer("block4").output.shape == (None, 1, 1, 2)
    assert model.name == "simple_cnn"


def test_feature_block_names_is_empty_for_a_model_without_blocks():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    assert feature_block_names(model) == []


def test_simple_cnn_input_size_resizes_inside_the_model():
    model = build_classifier((12, 12, 1), 2, conv_filters=(4,), dense_units=4, input_size=20)
    assert model.input_shape == (None, 12, 12, 1)
    assert model.get_layer("input_adapter").output.shape == (None, 20, 20, 1)
    assert model.get_layer("block1").output.shape == (None, 10, 10, 4)


def test_simple_cnn_loads_weights_of_the_same_architecture(tmp_path):
    arguments = {"conv_filters": (4, 8), "dense_units": 6}
    trained = build_classifier((12, 12, 1), 3, **arguments)
    rng = np.random.default_rng(2)
    trained.set_weights([rng.normal(size=w.shape) for w in trained.get_weights()])
    path = tmp_path / "simple_cnn.weights.h5"
    trained.save_weights(path)
    restored = build_classifier((12, 12, 1), 3, weights=path, **arguments)
    assert_same_layer_weights(trained, restored)
    images = random_images((12, 12, 1))
    np.testing.assert_allclose(restored.predict(images, verbose=0),
                               trained.predict(images, verbose=0), rtol=1e-6)


# --- separable_resnet -------------------------------------------------------------------------

# An entry convolution and two residual blocks, small enough to build in a fraction of a second.
SEPARABLE_SHAPE = (32, 32, 3)
SEPARABLE_FILTERS = (8, 8, 16)


def separable_classifier(shape=SEPARABLE_SHAPE, **arguments):
    arguments = {"conv_filters": SEPARABLE_FILTERS, "dense_units": 8, **arguments}
    return build_classifier(shape, 3, backbone="separable_resnet", **arguments)


def randomize(model: keras.Model, seed: int) -> None:
    """Weights (batch-norm statistics included) no fresh initialisation would produce; positive,
    so that no moving variance goes negative and turns the predictions into NaN."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape) for w in model.get_weights()])


@pytest.fixture(scope="module")
def separable():
    return separable_classifier()


def test_separable_resnet_outputs_probabilities_of_each_class(separable):
    probabilities = predict(separable, random_images(SEPARABLE_SHAPE, count=4, seed=6))
    assert probabilities.shape == (4, 3)
    assert probabilities.dtype == np.float32
    assert np.all(probabilities >= 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert separable.name == "separable_resnet"
    assert separable.input_shape == (None, *SEPARABLE_SHAPE)
    assert separable.get_layer("logits").output.shape == (None, 3)


def test_separable_resnet_blocks_are_residual_sums_found_in_order(separable):
    # conv_filters[0] is the entry convolution; each further entry is one block.
    assert feature_block_names(separable) == ["block1", "block2"]
    for name in ("block1", "block2"):
        assert isinstance(separable.get_layer(name), keras.layers.Add)
        assert isinstance(separable.get_layer(f"{name}_unit1_sepconv"),
                          keras.layers.SeparableConv2D)
    assert not any(isinstance(layer, InputAdapter) for layer in separable.layers)


def test_separable_resnet_halves_the_side_at_the_entry_and_at_every_block(separable):
    shapes = [separable.get_layer(name).output.shape
              for name in ("entry_conv", "block1", "block2")]
    assert shapes == [(None, 16, 16, 8), (None, 8, 8, 8), (None, 4, 4, 16)]
    # The last block's (activated) sum is what the head pools.
    assert separable.get_layer("global_pool").input.shape == (None, 4, 4, 16)


def test_separable_resnet_rounds_an_odd_side_up():
    model = separable_classifier((20, 20, 1), conv_filters=(4, 4, 4))
    sides = [model.get_layer(name).output.shape[1] for name in ("entry_conv", "block1", "block2")]
    assert sides == [10, 5, 3]


def test_separable_resnet_input_size_resizes_inside_the_model():
    model = separable_classifier((24, 24, 3), input_size=32)
    assert model.input_shape == (None, 24, 24, 3)
    assert model.get_layer("input_adapter").output.shape == (None, 32, 32, 3)
    assert model.get_layer("entry_conv").output.shape == (None, 16, 16, 8)
    assert model.get_layer("block2").output.shape == (None, 4, 4, 16)


def test_separable_resnet_loads_weights_of_the_same_architecture(tmp_path):
    trained = separable_classifier()
    randomize(trained, seed=7)
    path = tmp_path / "separable_resnet.weights.h5"
    trained.save_weights(path)
    restored = separable_classifier(weights=path)
    assert_same_layer_weights(trained, restored)
    images = random_images(SEPARABLE_SHAPE, seed=8)
    expected = predict(trained, images)
    assert np.all(np.isfinite(expected))
    np.testing.assert_allclose(predict(restored, images), expected, rtol=1e-6)


@pytest.mark.parametrize("module", sorted(ATTENTION_MODULES))
def test_attention_goes_after_the_last_separable_resnet_block(module, separable):
    model = add_attention(separable, module, reduction_ratio=2)
    names = [layer.name for layer in model.layers]
    base_names = [layer.name for layer in separable.layers]
    split = base_names.index("block2") + 1
    assert names == base_names[:split] + [f"attention_{module}"] + base_names[split:]
    probabilities = predict(model, random_images(SEPARABLE_SHAPE, seed=9))
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_attention_can_follow_every_separable_resnet_block(separable):
    model = add_attention(separable, "se", placement=["block1", "block2"], reduction_ratio=2)
    names = [layer.name for layer in model.layers]
    assert names.index("attention_se_block1") == names.index("block1") + 1
    assert names.index("attention_se_block2") == names.index("block2") + 1
    with pytest.raises(ValueError, match=r"'entry_conv' is not a feature block"):
        add_attention(separable, "se", placement="entry_conv")


def test_separable_resnet_round_trips_through_a_keras_file(tmp_path):
    model = separable_classifier((24, 24, 3), input_size=32)
    randomize(model, seed=10)
    path = tmp_path / "separable_resnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = random_images((24, 24, 3), count=3, seed=11)
    expected = predict(model, images)
    assert np.all(np.isfinite(expected))
    np.testing.assert_array_equal(predict(loaded, images), expected)
    assert feature_block_names(loaded) == ["block1", "block2"]
    assert isinstance(loaded.get_layer("input_adapter"), InputAdapter)


# --- keras.applications backbones -------------------------------------------------------------


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("backbone", APPLICATIONS)
def test_application_outputs_float32_probabilities_through_logits(backbone, shape_name):
    model = application_model(backbone, shape_name)
    images = random_images(SHAPES[shape_name])
    probabilities = predict(model, images)
    assert probabilities.shape == (2, 3)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.name == backbone
    assert model.input_shape == (None, *SHAPES[shape_name])
    assert model.get_layer("image").output.dtype == "float32"
    assert model.get_layer("logits").output.shape == (None, 3)
    assert model.get_layer("probabilities").output.dtype == "float32"


@pytest.mark.parametrize("shape_name, side", [("grey", 32), ("rgb", 40)])
@pytest.mark.parametrize("backbone", APPLICATIONS)
def test_application_sees_rgb_at_the_image_side_or_at_least_32(backbone, shape_name, side):
    adapter = application_model(backbone, shape_name).get_layer("input_adapter")
    assert adapter.output.shape == (None, side, side, 3)
    assert adapter.mode == APPLICATION_BACKBONES[backbone].adapter_mode


@pytest.mark.parametrize("backbone", APPLICATIONS)
def test_application_layers_are_part_of_one_flat_graph(backbone):
    model = application_model(backbone, "grey")
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    # The layers a keras.applications model would hold are reachable by name, as attention
    # insertion needs; the last stage feeds the shared head.
    last_stage = APPLICATION_BACKBONES[backbone].stage_names[-1]
    assert model.get_layer("global_pool").input is model.get_layer(last_stage).output


@pytest.mark.parametrize("backbone", APPLICATIONS)
def test_feature_block_names_list_each_stage_at_a_smaller_resolution(backbone):
    model = application_model(backbone, "rgb")
    names = feature_block_names(model)
    assert names == list(APPLICATION_BACKBONES[backbone].stage_names)
    sides = [model.get_layer(name).output.shape[1] for name in names]
    assert all(later < earlier for earlier, later in itertools.pairwise(sides))
    assert sides[-1] == model.get_layer("global_pool").input.shape[1]


def test_expected_stage_names_per_backbone():
    # Spelled out, so that a change of the curated lists is a deliberate one.
    expected = {
        "mobilenet_v2": ["expanded_conv_project_BN", "block_2_add", "block_5_add",
                         "block_12_add", "out_relu"],
        "efficientnet_b0": ["block1a_project_bn", "block2b_add", "block3b_add", "block5c_add",
                            "top_activation"],
        "resnet50": ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                     "conv5_block3_out"],
        "vgg16": ["block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool"],
    }
    assert {name: feature_block_names(application_model(name, "grey")) for name in expected} == (
        expected
    )
    assert OWN_BACKBONES == ("simple_cnn", "separable_resnet")
    assert BACKBONES == ("simple_cnn", "separable_resnet", *expected)


@pytest.mark.parametrize("backbone", APPLICATIONS)
def test_gradients_reach_the_input_image(backbone):
    model = application_model(backbone, "grey")
    images = tf.constant(random_images(SHAPES["grey"], seed=3))
    logits_model = keras.Model(model.inputs, model.get_layer("logits").output)
    with tf.GradientTape() as tape:
        tape.watch(images)
        score = tf.reduce_sum(logits_model(images, training=False)[:, 0])
    gradient = tape.gradient(score, images).numpy()
    assert gradient.shape == images.shape
    assert np.all(np.isfinite(gradient))
    assert np.any(gradient != 0.0)


def test_application_builds_under_mixed_precision_with_float32_preprocessing_and_output():
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_classifier((28, 28, 1), 3, backbone="mobilenet_v2", dense_units=8)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    assert model.get_layer("input_adapter").output.dtype == "float32"
    assert model.get_layer("Conv1").compute_dtype == "bfloat16"
    probabilities = predict(model, random_images((28, 28, 1)))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-3)


def test_input_size_sets_the_side_the_application_sees():
    model = build_classifier((40, 40, 3), 2, backbone="vgg16", dense_units=4, input_size=64)
    assert model.get_layer("input_adapter").output.shape == (None, 64, 64, 3)
    assert model.get_layer("block5_pool").output.shape == (None, 2, 2, 512)


def test_mobilenet_v2_round_trips_through_a_keras_file(tmp_path):
    model = build_classifier((28, 28, 1), 3, backbone="mobilenet_v2", dense_units=8)
    path = tmp_path / "mobilenet_v2.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = random_images((28, 28, 1), count=3, seed=4)
    np.testing.assert_array_equal(predict(loaded, images), predict(model, images))
    assert isinstance(loaded.get_layer("input_adapter"), InputAdapter)
    assert feature_block_names(loaded) == feature_block_names(model)


def _save_legacy_h5(model: keras.Model, path) -> None:
    """Write weights in the legacy format of the ImageNet files keras.applications downloads."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


@pytest.mark.parametrize("file_name", ["mobilenet_v2.weights.h5", "mobilenet_v2_no_top.h5"])
def test_application_loads_no_top_weights_from_a_path(tmp_path, file_name):
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    rng = np.random.default_rng(5)
    reference.set_weights([rng.normal(size=w.shape) for w in reference.get_weights()])
    path = tmp_path / file_name
    if file_name.endswith(".weights.h5"):
        reference.save_weights(path)
    else:
        _save_legacy_h5(reference, path)
    model = build_classifier((28, 28, 1), 3, backbone="mobilenet_v2", weights=str(path))
    assert_same_layer_weights(reference, model)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"dropout_rate": -0.1}, "dropout_rate"),
        ({"conv_filters": (4, 0)}, "conv_filters"),
        ({"conv_filters": ()}, "conv_filters"),
        ({"dense_units": 0}, "dense_units"),
        ({"input_shape": (3, 12, 1)}, "too small"),
        ({"input_shape": (12, 12)}, "input_shape"),
        ({"input_size": 3}, "too small"),
        ({"input_size": 0}, "input_size"),
        ({"backbone": "resnet18"}, "resnet18.*simple_cnn, separable_resnet, mobilenet_v2"),
        ({"weights": "imagenet"}, "simple_cnn has no ImageNet weights"),
        ({"backbone": "separable_resnet", "weights": "imagenet"},
         "separable_resnet has no ImageNet weights: use one of mobilenet_v2"),
        ({"backbone": "separable_resnet", "conv_filters": (8,)},
         r"conv_filters=\(8,\) is invalid for separable_resnet"),
        ({"backbone": "separable_resnet", "conv_filters": (8, 0)}, "conv_filters"),
        ({"backbone": "separable_resnet", "input_shape": (3, 3, 3)}, "too small"),
        ({"backbone": "vgg16", "input_size": 31}, "input_size=31.*minimum is 32"),
        ({"backbone": "vgg16", "input_shape": (32, 32, 2)}, "2 channels"),
    ],
)
def test_bad_arguments_raise_value_error(arguments, message):
    defaults = {"input_shape": (12, 12, 1), "num_classes": 3, "conv_filters": (4, 8)}
    defaults.update(arguments)
    input_shape = defaults.pop("input_shape")
    num_classes = defaults.pop("num_classes")
    with pytest.raises(ValueError, match=message):
        build_classifier(input_shape, num_classes, **defaults)


def test_bad_weights_paths_say_what_is_expected(tmp_path):
    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(ValueError, match="does not exist"):
        build_classifier((32, 32, 3), 2, backbone="vgg16", weights=missing)
    wrong_suffix = tmp_path / "vgg16.ckpt"
    wrong_suffix.write_bytes(b"not weights")
    with pytest.raises(ValueError, match=r"ending in \.weights\.h5"):
        build_classifier((32, 32, 3), 2, backbone="vgg16", weights=wrong_suffix)
    with pytest.raises(TypeError, match="expected 'none', 'imagenet' or a file path"):
        build_classifier((32, 32, 3), 2, backbone="vgg16", weights=None)


@pytest.mark.parametrize("backbone", ["simple_cnn", "separable_resnet", "mobilenet_v2"])
def test_head_layer_names_are_the_last_layers_of_every_classifier(backbone):
    # The attention stage trains exactly these layers (and the module) on a frozen backbone.
    model = build_classifier((32, 32, 1), 3, backbone=backbone, conv_filters=(4, 4),
                             dense_units=4)
    assert tuple(layer.name for layer in model.layers[-len(HEAD_LAYER_NAMES):]) \
        == HEAD_LAYER_NAMES
