"""Random augmentation of training batches, as Keras preprocessing layers in the tf.data pipeline.

Augmentation runs on the training split only, inside the input pipeline rather than the model,
so saved models carry no training-only layers and explanations see exactly the model that
classifies. Layers are seeded, so two runs with the same seed see the same augmented batches;
during training :class:`pixelflip.training.resume.EpochSeeding` re-seeds them every epoch so that
the draws of an epoch depend only on ``(seed, epoch)``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

# At elastic_strength 1 the root-mean-square displacement is this fraction of the shorter image
# side: 2.8 pixels on a 28-pixel digit, a strong but still legible warp. Simard et al. (2003)
# used about half of that on MNIST (alpha 34, sigma 4), i.e. elastic_strength ~0.5.
_DISPLACEMENT_AT_FULL_STRENGTH = 0.1


@keras.saving.register_keras_serializable(package="pixelflip")
class RandomElasticDistortion(keras.layers.Layer):
    """Elastic distortion (Simard et al., 2003) with a new random displacement field per image.

    Each pixel moves by a smooth random displacement: uniform noise in [-1, 1] for the rows and
    the columns, blurred by a Gaussian, scaled, then the image is resampled bilinearly at the
    displaced positions (mirrored at the borders). Outputs are convex combinations of input
    pixels, so images in [0, 1] stay in [0, 1].

    ``keras.layers.RandomElasticTransform`` is not used because, inside a ``tf.data`` map
    (where the batch size is unknown), Keras 3.15 distorts only the first image of the batch and
    broadcasts it over the whole batch, and it draws the row and column fields from one seed
    (every pixel then moves along the diagonal).

    Args:
        strength: in (0, 1]; the root-mean-square displacement is ``strength * 0.1`` times the
            shorter image side.
        smoothness: in (0, 0.5]; standard deviation of the Gaussian blur of the field, as a
            fraction of the shorter image side. Small values give local ripples, large values
            a gentle warp of the whole image.
        seed: seed of the layer's ``keras.random.SeedGenerator``.

    Input: float32 (B, H, W, C) with H and W known; output: the same shape, float32.
    """

    def __init__(self, strength: float, smoothness: float = 0.15, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength!r}.")
        if not 0.0 < float(smoothness) <= 0.5:
            raise ValueError(f"smoothness must be in (0, 0.5], got {smoothness!r}.")
        self.strength = float(strength)
        self.smoothness = float(smoothness)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        images = tf.convert_to_tensor(images, tf.float32)
        height, width = images.shape[1], images.shape[2]
        if images.shape.rank != 4 or height is None or width is None:
            raise ValueError(
                f"RandomElasticDistortion needs (B, H, W, C) images with known H and W, got "
                f"shape {images.shape}."
            )
        side = min(height, width)
        sigma = self.smoothness * side
        radius = max(1, math.ceil(3.0 * sigma))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        kernel /= kernel.sum()
        # Uniform noise in [-1, 1] has variance 1/3; the separable blur multiplies the variance
        # by sum(kernel**2) once per axis. Dividing by the resulting deviation makes `strength`
        # the displacement actually seen, whatever the smoothness.
        field_deviation = math.sqrt(1.0 / 3.0) * float(np.sum(kernel**2))
        scale = self.strength * _DISPLACEMENT_AT_FULL_STRENGTH * side / field_deviation

        batch_size = tf.shape(images)[0]
        seed = self.seed_generator.next()
        # Noise on a canvas `radius` wider on every side, blurred with VALID padding, so the
        # field has no border artefacts and comes out (B, H, W, 2) exactly.
        noise = tf.random.stateless_uniform(
            (batch_size, height + 2 * radius, width + 2 * radius, 2), seed=seed,
            minval=-1.0, maxval=1.0,
        )
        taps = tf.constant(kernel, tf.float32)
        along_rows = tf.tile(tf.reshape(taps, (-1, 1, 1, 1)), (1, 1, 2, 1))
        along_columns = tf.tile(tf.reshape(taps, (1, -1, 1, 1)), (1, 1, 2, 1))
        field = tf.nn.depthwise_conv2d(noise, along_rows, [1, 1, 1, 1], "VALID")
        field = tf.nn.depthwise_conv2d(field, along_columns, [1, 1, 1, 1], "VALID") * scale

        rows = tf.range(height, dtype=tf.float32)[None, :, None] + field[..., 0]
        columns = tf.range(width, dtype=tf.float32)[None, None, :] + field[..., 1]
        return _bilinear_sample(images, _mirror(rows, height), _mirror(columns, width))

    def get_config(self):
        return {**super().get_config(), "strength": self.strength,
                "smoothness": self.smoothness, "seed": self.seed}


def _mirror(coordinates: tf.Tensor, size: int) -> tf.Tensor:
    """Fold coordinates into [0, size - 1] by reflecting at the borders (c d c b | a b c d)."""
    if size == 1:
        return tf.zeros_like(coordinates)
    period = 2.0 * (size - 1)
    folded = tf.math.floormod(coordinates, period)
    return tf.where(folded > size - 1, period - folded, folded)


def _bilinear_sample(images: tf.Tensor, rows: tf.Tensor, columns: tf.Tensor) -> tf.Tensor:
    """Sample (B, H, W, C) ``images`` at fractional (B, H, W) positions in the image bounds."""
    height, width = images.shape[1], images.shape[2]
    top = tf.floor(rows)
    left = tf.floor(columns)
    row_weight = (rows - top)[..., None]
    column_weight = (columns - left)[..., None]
    top = tf.cast(top, tf.int32)
    left = tf.cast(left, tf.int32)
    bottom = tf.minimum(top + 1, height - 1)
    right = tf.minimum(left + 1, width - 1)

    def pixels(row_index, column_index):
        return tf.gather_nd(images, tf.stack([row_index, column_index], axis=-1), batch_dims=1)

    upper = pixels(top, left) * (1.0 - column_weight) + pixels(top, right) * column_weight
    lower = pixels(bottom, left) * (1.0 - column_weight) + pixels(bottom, right) * column_weight
    return upper * (1.0 - row_weight) + lower * row_weight


def build_augmenter(
    *,
    horizontal_flip: bool,
    rotation: float,
    translation: float,
    random_state: int,
    elastic_strength: float = 0.0,
    elastic_smoothness: float = 0.15,
) -> keras.Sequential | None:
    """Keras layers that augment a batch, or None when every augmentation is off.

    Args:
        horizontal_flip: mirror images left-right at random (photos; never digits).
        rotation: largest random rotation, as a fraction of a full turn, in [0, 0.5].
        translation: largest random shift, as a fraction of the image side, in [0, 0.5].
        random_state: seed of every layer (each layer derives its own).
        elastic_strength: elastic distortion in [0, 1], 0 = off; the root-mean-square pixel
            displacement is ``elastic_strength * 0.1`` times the shorter image side
            (about 0.5 matches Simard et al.'s MNIST setting).
        elastic_smoothness: in (0, 0.5]; width of the distortion's Gaussian smoothing as a
            fraction of the shorter image side (0.15 is 4 pixels on a 28-pixel digit).

    Returns:
        A ``keras.Sequential`` mapping float32 (B, H, W, C) in [0, 1] to the same shape and
        range, or None.

    Raises:
        ValueError: a value outside its range.
    """
    for name, value in (("rotation", rotation), ("translation", translation)):
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"{name} must be a fraction between 0 and 0.5, got {value!r}.")
    if not 0.0 <= elastic_strength <= 1.0:
        raise ValueError(f"elastic_strength must be between 0 and 1, got {elastic_strength!r}.")
    if not 0.0 < elastic_smoothness <= 0.5:
        raise ValueError(
            f"elastic_smoothness must be in (0, 0.5], got {elastic_smoothness!r}."
        )
    # float32 whatever the global dtype policy: under mixed precision the layers would
    # otherwise hand bfloat16 images to a model that casts them itself.
    layers = []
    # Each layer gets its own seed: equal seeds would make flips and rotations move together.
    if horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=random_state, dtype="float32"))
    if rotation > 0:
        layers.append(keras.layers.RandomRotation(
            rotation, fill_mode="reflect", seed=random_state + 1, dtype="float32"))
    if translation > 0:
        layers.append(keras.layers.RandomTranslation(
            translation, translation, fill_mode="reflect", seed=random_state + 2,
            dtype="float32"))
    if elastic_strength > 0:
        layers.append(RandomElasticDistortion(
            elastic_strength, elastic_smoothness, seed=random_state + 3, dtype="float32"))
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
