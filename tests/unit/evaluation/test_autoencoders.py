"""The per-class autoencoders of IM1: built for any image shape, trained seeded, checked
arguments."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from pixelflip.evaluation.autoencoders import build_autoencoder, train_class_autoencoders


@pytest.mark.parametrize("shape", [(28, 28, 1), (128, 128, 3), (13, 7, 2), (1, 1, 1)])
def test_autoencoder_restores_any_image_shape(shape):
    model = build_autoencoder(shape, random_state=3)
    assert tuple(model.output_shape) == (None, *shape)
    images = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype(np.float32)
    reconstruction = np.asarray(model(images))
    assert reconstruction.shape == images.shape
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0


def test_training_is_seeded_and_reads_uint8_rgb():
    images = np.random.default_rng(0).integers(0, 256, (30, 9, 11, 3), dtype=np.uint8)
    labels = np.full(30, 2)

    def trained_weights():
        models = train_class_autoencoders(
            images, labels, epochs=2, batch_size=8, random_state=5, max_images_per_class=20
        )
        assert list(models) == [2]
        assert tuple(models[2].output_shape) == (None, 9, 11, 3)
        return models[2].get_weights()

    first, again = trained_weights(), trained_weights()
    for left, right in zip(first, again):
        np.testing.assert_array_equal(left, right)
    seeded = [build_autoencoder((9, 11, 3), random_state=seed).get_weights() for seed in (5, 5, 6)]
    np.testing.assert_array_equal(seeded[0][0], seeded[1][0])
    assert not np.array_equal(seeded[0][0], seeded[2][0])


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"max_images_per_class": 0}, "max_images_per_class"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_training_rejects_bad_settings(keywords, message):
    images = np.zeros((4, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=message):
        train_class_autoencoders(images, np.zeros(4, np.int64), **keywords)


def test_build_autoencoder_rejects_bad_shapes():
    with pytest.raises(ValueError, match="input_shape"):
        build_autoencoder((28, 28))
    with pytest.raises(ValueError, match="input_shape"):
        build_autoencoder((28, 0, 1))
