"""Training-batch augmentation: what each option does, and that a seed repeats it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pixelflip.data.augment import augment_dataset, build_augmenter


def _batches(count: int = 32) -> tf.data.Dataset:
    images = np.random.default_rng(0).random((count, 12, 12, 3)).astype(np.float32)
    labels = np.arange(count, dtype=np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(16), images


def _run(dataset):
    parts = [(x.numpy(), y.numpy()) for x, y in dataset]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_no_augmentation_means_no_layers_and_an_unchanged_dataset():
    dataset, _ = _batches()
    assert build_augmenter(horizontal_flip=False, rotation=0, translation=0, random_state=0) is None
    assert augment_dataset(dataset, None) is dataset


def test_horizontal_flip_mirrors_some_images_and_leaves_the_rest_exact():
    dataset, images = _batches()
    augmenter = build_augmenter(horizontal_flip=True, rotation=0, translation=0, random_state=3)

    augmented, labels = _run(augment_dataset(dataset, augmenter))

    assert labels.tolist() == list(range(32))
    mirrored = [np.allclose(out, image[:, ::-1]) for out, image in zip(augmented, images)]
    unchanged = [np.allclose(out, image) for out, image in zip(augmented, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 0 < sum(mirrored) < 32


def test_rotation_and_translation_stay_in_range_and_repeat_with_the_seed():
    def augmented_with(seed):
        dataset, _ = _batches()
        augmenter = build_augmenter(horizontal_flip=True, rotation=0.1, translation=0.1,
                                    random_state=seed)
        return _run(augment_dataset(dataset, augmenter))[0]

    first, again, other = augmented_with(5), augmented_with(5), augmented_with(6)
    _, images = _batches()
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert not np.allclose(first, images)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_fractions_out_of_range_are_refused():
    with pytest.raises(ValueError, match="rotation must be a fraction between 0 and 0.5"):
        build_augmenter(horizontal_flip=False, rotation=0.7, translation=0, random_state=0)
