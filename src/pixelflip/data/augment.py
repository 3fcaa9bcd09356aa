"""Random augmentation of training batches, as Keras preprocessing layers in the tf.data pipeline.

Augmentation runs on the training split only, inside the input pipeline rather than the model,
so saved models carry no training-only layers and explanations see exactly the model that
classifies. Layers are seeded, so two runs with the same seed see the same augmented batches.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def build_augmenter(
    *, horizontal_flip: bool, rotation: float, translation: float, random_state: int
) -> keras.Sequential | None:
    """Keras layers that augment a batch, or None when every augmentation is off.

    Args:
        horizontal_flip: mirror images left-right at random (photos; never digits).
        rotation: largest random rotation, as a fraction of a full turn, in [0, 0.5].
        translation: largest random shift, as a fraction of the image side, in [0, 0.5].
        random_state: seed of every layer.

    Returns:
        A ``keras.Sequential`` mapping float32 (B, H, W, C) in [0, 1] to the same shape and
        range, or None.
    """
    for name, value in (("rotation", rotation), ("translation", translation)):
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"{name} must be a fraction between 0 and 0.5, got {value!r}.")
    layers = []
    # Each layer gets its own seed: equal seeds would make flips and rotations move together.
    if horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=random_state))
    if rotation > 0:
        layers.append(keras.layers.RandomRotation(
            rotation, fill_mode="reflect", seed=random_state + 1))
    if translation > 0:
        layers.append(keras.layers.RandomTranslation(
            translation, translation, fill_mode="reflect", seed=random_state + 2))
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")


def augment_dataset(dataset: tf.data.Dataset, augmenter: keras.Sequential | None) -> tf.data.Dataset:
    """Apply ``augmenter`` (from ``build_augmenter``) to the images of ``(images, labels)`` batches."""
    if augmenter is None:
        return dataset

    def augment(images, labels):
        augmented = augmenter(images, training=True)
        # Interpolation can overshoot a little; the model was promised [0, 1].
        return tf.clip_by_value(augmented, 0.0, 1.0), labels

    # Sequential on purpose: the layers draw from one seed state, and parallel calls would take
    # turns in a different order each run, breaking "same seed, same batches". Batches are
    # still prefetched, so this overlaps with training.
    return dataset.map(augment).prefetch(tf.data.AUTOTUNE)
