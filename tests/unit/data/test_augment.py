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


def _ramp_batch(count: int = 16, side: int = 28) -> np.ndarray:
    """``count`` copies of a left-to-right ramp: a pixel's value says which column it came from."""
    ramp = np.tile(np.linspace(0.0, 1.0, side, dtype=np.float32), (side, 1))
    return np.repeat(ramp[None, :, :, None], count, axis=0)


def _elastic(images: np.ndarray, *, strength: float, seed: int, smoothness: float = 0.15):
    augmenter = build_augmenter(horizontal_flip=False, rotation=0, translation=0,
                                elastic_strength=strength, elastic_smoothness=smoothness,
                                random_state=seed)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(len(images)))).batch(8)
    return _run(augment_dataset(dataset, augmenter))


def test_elastic_distortion_warps_each_image_of_a_batch_differently_within_range():
    _, images = _batches()
    augmented, labels = _elastic(images, strength=0.6, seed=1)

    assert augmented.shape == images.shape and augmented.dtype == np.float32
    assert labels.tolist() == list(range(32))
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    # Every image moved, and no image became a copy of another (in a tf.data map Keras'
    # RandomElasticTransform pastes the first image of a batch over all the others).
    assert all(not np.allclose(out, image) for out, image in zip(augmented, images))
    assert len({out.tobytes() for out in augmented}) == len(augmented)
    # A warp moves pixels a little: the content stays close to the original.
    assert np.abs(augmented - images).mean() < np.abs(images - images[::-1]).mean()


def test_elastic_strength_sets_the_displacement_and_repeats_with_the_seed():
    images = _ramp_batch()
    distances = {}
    for strength in (0.25, 1.0):
        warped, _ = _elastic(images, strength=strength, seed=4)
        # On a ramp, value * (side - 1) is a column index: the change is the column shift.
        # Borders are left out, where mirroring folds displacements back.
        shift = (warped - images)[:, :, 4:-4] * 27
        distances[strength] = float(np.sqrt(np.mean(shift**2)))
    # Documented: root-mean-square displacement = strength * 10% of the side (2.8 px here).
    assert distances[1.0] == pytest.approx(2.8, rel=0.3)
    assert distances[0.25] == pytest.approx(0.7, rel=0.3)

    first, again, other = (_elastic(images, strength=0.5, seed=seed)[0] for seed in (7, 7, 8))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_elastic_distortion_is_identity_outside_training_and_serializable():
    from pixelflip.data.augment import RandomElasticDistortion

    layer = RandomElasticDistortion(0.5, smoothness=0.2, seed=3)
    images = _ramp_batch(count=2, side=12)
    np.testing.assert_array_equal(layer(images, training=False), images)
    clone = RandomElasticDistortion.from_config(layer.get_config())
    assert (clone.strength, clone.smoothness, clone.seed) == (0.5, 0.2, 3)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"elastic_strength": 1.5}, "elastic_strength must be between 0 and 1"),
        ({"elastic_strength": -0.1}, "elastic_strength must be between 0 and 1"),
        ({"elastic_strength": 0.5, "elastic_smoothness": 0.0}, "elastic_smoothness"),
        ({"elastic_strength": 0.5, "elastic_smoothness": 0.6}, "elastic_smoothness"),
    ],
)
def test_elastic_values_out_of_range_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_augmenter(horizontal_flip=False, rotation=0, translation=0, random_state=0,
                        **arguments)
