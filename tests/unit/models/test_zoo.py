"""Tests for pixelflip.models.zoo and pixelflip.models.input_adapter: keras.applications facts,
the input adaptation layer, and ImageNet weights with and without a network."""

import inspect
import json
import os
import socket
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.applications import efficientnet, mobilenet_v2, resnet, vgg16

from pixelflip.models.input_adapter import ADAPTER_MODES, InputAdapter
from pixelflip.models.zoo import APPLICATION_BACKBONES

# keras' own preprocessing of [0, 255] RGB pixels for each backbone.
KERAS_PREPROCESS_INPUT = {
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "efficientnet_b0": keras.applications.efficientnet.preprocess_input,
    "resnet50": keras.applications.resnet50.preprocess_input,
    "vgg16": keras.applications.vgg16.preprocess_input,
}


def random_images(shape, *, count=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(count, *shape)).astype("float32")


def adapt(adapter: InputAdapter, images) -> np.ndarray:
    return keras.ops.convert_to_numpy(adapter(images))


# --- the input adapter ------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", list(KERAS_PREPROCESS_INPUT))
def test_adapter_matches_keras_preprocess_input(backbone):
    images = random_images((32, 32, 3), seed=1)
    adapter = InputAdapter(32, mode=APPLICATION_BACKBONES[backbone].adapter_mode)
    expected = KERAS_PREPROCESS_INPUT[backbone](images * 255.0)
    np.testing.assert_allclose(adapt(adapter, images), expected, rtol=1e-5, atol=1e-4)


def test_adapter_modes_give_their_documented_ranges():
    extremes = np.stack([np.zeros((32, 32, 3)), np.ones((32, 32, 3))]).astype("float32")
    lowest_highest = {
        mode: (adapt(InputAdapter(32, mode=mode), extremes)[0, 0, 0],
               adapt(InputAdapter(32, mode=mode), extremes)[1, 0, 0])
        for mode in ADAPTER_MODES
    }
    np.testing.assert_allclose(lowest_highest["unit"], [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_allclose(lowest_highest["pixels"], [[0, 0, 0], [255, 255, 255]])
    np.testing.assert_allclose(lowest_highest["tf"], [[-1, -1, -1], [1, 1, 1]])
    bgr_means = np.array([103.939, 116.779, 123.68])
    np.testing.assert_allclose(lowest_highest["caffe"], [-bgr_means, 255 - bgr_means], rtol=1e-5)


def test_caffe_mode_swaps_red_and_blue():
    images = np.zeros((1, 32, 32, 3), dtype="float32")
    images[..., 0] = 1.0  # pure red
    adapted = adapt(InputAdapter(32, mode="caffe"), images)
    # In BGR order red is the last channel: it gets the full 255, blue and green none.
    np.testing.assert_allclose(adapted[0, 0, 0], [-103.939, -116.779, 255.0 - 123.68], rtol=1e-5)


@pytest.mark.parametrize("mode", list(ADAPTER_MODES))
def test_grey_is_replicated_to_three_equal_channels(mode):
    grey = random_images((32, 32, 1), seed=2)
    adapter = InputAdapter(32, mode=mode if mode != "caffe" else "tf")
    adapted = adapt(adapter, grey)
    assert adapted.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(adapted, adapt(adapter, np.repeat(grey, 3, axis=-1)), rtol=1e-6)
    np.testing.assert_array_equal(adapted[..., 0], adapted[..., 2])


def test_grey_reaches_caffe_mode_as_equal_pixels_minus_each_mean():
    grey = np.full((1, 32, 32, 1), 0.5, dtype="float32")
    adapted = adapt(InputAdapter(32, mode="caffe"), grey)
    np.testing.assert_allclose(adapted[0, 5, 5], 127.5 - np.array([103.939, 116.779, 123.68]),
                               rtol=1e-5)


def test_adapter_resizes_bilinearly_to_its_side():
    # A horizontal ramp stays a ramp through a bilinear resize: monotone along the width,
    # constant along the height, inside the input range.
    ramp = np.tile(np.linspace(0.0, 1.0, 28, dtype="float32"), (28, 1))[None, :, :, None]
    adapted = adapt(InputAdapter(56, mode="unit"), ramp)
    assert adapted.shape == (1, 56, 56, 3)
    row = adapted[0, 10, :, 0]
    assert np.all(np.diff(row) >= -1e-6) and row[-1] > row[0]
    np.testing.assert_allclose(adapted[0, :, 7, 1], adapted[0, 0, 7, 1], rtol=1e-6)
    assert adapted.min() >= -1e-6 and adapted.max() <= 1.0 + 1e-6


def test_adapter_keeps_channels_without_to_rgb():
    adapter = InputAdapter(16, to_rgb=False, mode="unit")
    assert adapt(adapter, random_images((8, 8, 1))).shape == (2, 16, 16, 1)
    assert adapter.compute_output_shape((None, 8, 8, 1)) == (None, 16, 16, 1)


@pytest.mark.parametrize("shape, side", [((28, 28, 1), 32), ((40, 40, 3), 32), ((32, 32, 3), 32)])
@pytest.mark.parametrize("mode", ["tf", "caffe", "pixels"])
def test_gradients_through_the_adapter_are_finite_and_non_zero(shape, side, mode):
    images = tf.constant(random_images(shape, seed=3))
    adapter = InputAdapter(side, mode=mode)
    weights = tf.constant(np.random.default_rng(4).normal(size=(1, side, side, 3)),
                          dtype="float32")
    with tf.GradientTape() as tape:
        tape.watch(images)
        score = tf.reduce_sum(adapter(images) * weights)
    gradient = tape.gradient(score, images).numpy()
    assert gradient.shape == images.shape
    assert np.all(np.isfinite(gradient))
    assert np.count_nonzero(gradient) > gradient.size // 2


def test_adapter_round_trips_through_its_config_and_a_keras_file(tmp_path):
    adapter = InputAdapter(36, to_rgb=True, mode="caffe", name="input_adapter")
    clone = InputAdapter.from_config(adapter.get_config())
    assert (clone.side, clone.to_rgb, clone.mode, clone.name) == (36, True, "caffe", "input_adapter")
    inputs = keras.Input((20, 20, 1))
    model = keras.Model(inputs, adapter(inputs))
    model.save(tmp_path / "adapter.keras")
    loaded = keras.saving.load_model(tmp_path / "adapter.keras", safe_mode=True)
    images = random_images((20, 20, 1), seed=5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images)),
                                  keras.ops.convert_to_numpy(model(images)))


@pytest.mark.parametrize(
    "arguments, input_shape, message",
    [
        ({"side": 0}, None, "side=0"),
        ({"side": True}, None, "side=True"),
        ({"side": 32, "mode": "torch"}, None, "mode='torch'.*unit, pixels, tf, caffe"),
        ({"side": 32, "mode": "caffe", "to_rgb": False}, (None, 8, 8, 1), "mode='caffe'"),
        ({"side": 32}, (None, 8, 8, 2), "2 channels"),
        ({"side": 32}, (None, 8, 8), "expected \\(batch, height, width, channels\\)"),
    ],
)
def test_bad_adapter_arguments_raise_value_error(arguments, input_shape, message):
    with pytest.raises(ValueError, match=message):
        InputAdapter(arguments.pop("side"), **arguments).build(input_shape)


# --- per-backbone facts -----------------------------------------------------------------------


def test_efficientnet_rescales_its_own_input_so_it_gets_0_to_255_pixels():
    from pixelflip.models.backbones import build_classifier

    model = build_classifier((32, 32, 3), 2, backbone="efficientnet_b0", dense_units=4)
    after_adapter = model.layers[model.layers.index(model.get_layer("input_adapter")) + 1]
    assert isinstance(after_adapter, keras.layers.Rescaling)
    assert after_adapter.scale == pytest.approx(1.0 / 255.0)


def test_imagenet_files_are_the_ones_keras_applications_downloads():
    facts = APPLICATION_BACKBONES
    assert facts["mobilenet_v2"].imagenet_url(40) == (
        mobilenet_v2.BASE_WEIGHT_PATH
        + "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    )
    assert facts["mobilenet_v2"].imagenet_file_name(96).endswith("_1.0_96_no_top.h5")
    assert facts["resnet50"].imagenet_url(32) == (
        resnet.BASE_WEIGHTS_PATH + "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert facts["resnet50"].imagenet_file_hash == resnet.WEIGHTS_HASHES["resnet50"][1]
    assert facts["vgg16"].imagenet_url(32) == vgg16.WEIGHTS_PATH_NO_TOP
    assert f'file_hash="{facts["vgg16"].imagenet_file_hash}"' in inspect.getsource(vgg16)
    assert facts["efficientnet_b0"].imagenet_url(32) == (
        efficientnet.BASE_WEIGHTS_PATH + "efficientnetb0_notop.h5"
    )
    assert facts["efficientnet_b0"].imagenet_file_hash == efficientnet.WEIGHTS_HASHES["b0"][1]
    assert all(hasattr(keras.applications, fact.constructor) for fact in facts.values())


# --- ImageNet weights without a network -------------------------------------------------------

# Runs in a fresh interpreter, because keras reads KERAS_HOME once, when it is imported.
_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, os, socket
    import h5py, keras, numpy as np
    from keras.src.legacy.saving import legacy_h5_format
    from pixelflip.models.zoo import BackboneWeightsError
    from pixelflip.models.backbones import build_classifier
    from pixelflip.models.zoo import APPLICATION_BACKBONES, keras_models_directory

    result = {"models_directory": keras_models_directory()}
    # A file already in keras' cache, in the legacy format of the real ImageNet files.
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    reference.set_weights([rng.normal(size=w.shape) for w in reference.get_weights()])
    os.makedirs(keras_models_directory(), exist_ok=True)
    cached = os.path.join(keras_models_directory(),
                          APPLICATION_BACKBONES["mobilenet_v2"].imagenet_file_name(32))
    with h5py.File(cached, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, reference)
    model = build_classifier((28, 28, 1), 2, backbone="mobilenet_v2", weights="imagenet")
    result["cached_weights_equal"] = all(
        all(np.array_equal(a, b) for a, b in zip(
            layer.get_weights(), model.get_layer(layer.name).get_weights()))
        for layer in reference.layers if layer.weights)
    for backbone in ("resnet50", "efficientnet_b0"):
        try:
            build_classifier((28, 28, 1), 2, backbone=backbone, weights="imagenet")
            result[backbone] = None
        except BackboneWeightsError as error:
            result[backbone] = str(error)
    result["socket_timeout"] = socket.getdefaulttimeout()
    print(json.dumps(result))
    """
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# A fresh interpreter importing TensorFlow takes ~10-20 s on two busy cores, hence slow.
@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """Run the script with an empty KERAS_HOME and every proxy at a closed local port."""
    keras_home = tmp_path_factory.mktemp("keras_home")
    proxy = f"http://127.0.0.1:{_closed_port()}"
    environment = dict(os.environ, KERAS_HOME=str(keras_home), TF_CPP_MIN_LOG_LEVEL="3")
    for variable in ("https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        environment[variable] = proxy
    for variable in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        environment.pop(variable, None)
    completed = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT], env=environment, capture_output=True,
        text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return keras_home, result


@pytest.mark.slow
def test_imagenet_weights_already_cached_load_without_a_network(offline_run):
    keras_home, result = offline_run
    assert result["models_directory"] == str(keras_home / "models")
    assert result["cached_weights_equal"] is True


@pytest.mark.slow
def test_unreachable_imagenet_weights_say_how_to_supply_them(offline_run):
    keras_home, result = offline_run
    url = APPLICATION_BACKBONES["resnet50"].imagenet_url(32)
    message = result["resnet50"]
    assert message is not None, "building resnet50 with weights='imagenet' did not fail offline"
    assert f"ImageNet weights of resnet50 could not be downloaded from {url}" in message
    assert "no internet access" in message
    assert f"download {url} on a machine with internet access" in message
    assert str(keras_home / "models") in message
    assert "~/.keras/models" in message
    assert "set train.weights to the path of the file" in message
    # The network's own reason is named, once, not keras' wrapper that repeats the URL.
    assert "(Connection refused)" in message or "[Errno 111] Connection refused" in message
    assert "URL fetch failure" not in message
    # The download ran under a temporary socket timeout; the default (None) is back afterwards.
    assert result["socket_timeout"] is None


@pytest.mark.slow
def test_unreachable_efficientnet_weights_only_suggest_keras_cache(offline_run):
    _, result = offline_run
    message = result["efficientnet_b0"]
    assert "ImageNet weights of efficientnet_b0 could not be downloaded" in message
    assert "keep train.weights: imagenet" in message
    assert "set train.weights to the path" not in message
