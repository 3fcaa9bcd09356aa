"""Tests for pixelflip.models.backbones: the baseline CNN and its feature-block names."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pixelflip.models.backbones import build_classifier, feature_block_names  # noqa: E402


@pytest.fixture(scope="module")
def classifier():
    return build_classifier((12, 12, 1), 3, conv_filters=(4, 8), dense_units=8, name="tiny")


def test_outputs_are_probabilities_of_each_class(classifier):
    images = np.random.default_rng(0).uniform(size=(5, 12, 12, 1)).astype("float32")
    probabilities = classifier.predict(images, verbose=0)
    assert probabilities.shape == (5, 3)
    assert np.all(probabilities >= 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert classifier.name == "tiny"


def test_logits_layer_feeds_the_softmax(classifier):
    images = np.random.default_rng(1).uniform(size=(4, 12, 12, 1)).astype("float32")
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


def test_feature_block_names_follow_the_number_of_blocks():
    model = build_classifier((16, 16, 3), 2, conv_filters=(2, 2, 2, 2), dense_units=4)
    assert feature_block_names(model) == ["block1", "block2", "block3", "block4"]
    assert model.get_layer("block4").output.shape == (None, 1, 1, 2)


def test_feature_block_names_is_empty_for_a_model_without_blocks():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    assert feature_block_names(model) == []


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
    ],
)
def test_bad_arguments_raise_value_error(arguments, message):
    defaults = {"input_shape": (12, 12, 1), "num_classes": 3, "conv_filters": (4, 8)}
    defaults.update(arguments)
    input_shape = defaults.pop("input_shape")
    num_classes = defaults.pop("num_classes")
    with pytest.raises(ValueError, match=message):
        build_classifier(input_shape, num_classes, **defaults)
