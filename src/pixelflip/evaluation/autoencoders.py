"""Small convolutional autoencoders, the models IM1 and IM2 score counterfactuals with.

:func:`train_class_autoencoders` trains one :func:`build_autoencoder` per class on that class's
training images, and :func:`train_shared_autoencoder` one on every class (the ``autoencoders``
stage); :func:`pixelflip.evaluation.im1.im1_scores` then compares a counterfactual's
reconstruction error under its new class's autoencoder with that under its old one's, and
:func:`pixelflip.evaluation.im2.im2_scores` its new class's reconstruction with the shared one's.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np

from pixelflip.config.checks import check_integer, check_non_negative
from pixelflip.evaluation.training_set import check_training_set, to_unit_float
from pixelflip.stage.inputs import check_model_file

#: The all-class autoencoder's file in the autoencoders stage's folder.
SHARED_AUTOENCODER_FILE = "shared.keras"
# Mixed into the shared autoencoder's seed so that it never equals a class's (class indices >= 0).
_SHARED_SEED_KEY = 2**31 - 1


def build_autoencoder(
    input_shape: tuple[int, int, int],
    *,
    filters: int = 16,
    latent_channels: int = 4,
    random_state: int = 0,
    name: str = "autoencoder",
) -> keras.Model:
    """A small convolutional autoencoder (functional Keras) for images of any height and width.

    Two stride-2 convolutions shrink (H, W) to (ceil(H/4), ceil(W/4)) with ``latent_channels``
    channels; two upsamplings restore at least (H, W), the excess rows and columns (odd sizes)
    are cropped, and a sigmoid convolution gives C channels in [0, 1]. The narrow bottleneck is
    what makes an autoencoder trained on one class reconstruct other classes badly.

    Parameters
    ----------
    input_shape : (H, W, C)
    filters : int >= 1, default 16
        Channels of the outer convolutions (the inner ones have twice as many).
    latent_channels : int >= 1, default 4
    random_state : int >= 0, default 0
        Seeds the initial weights, without touching any global random state.
    name : str
    """
    if len(input_shape) != 3 or any(
        isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1
        for size in input_shape
    ):
        raise ValueError(
            f"input_shape={tuple(input_shape)!r} is invalid; expected (height, width, channels) "
            "integers >= 1."
        )
    check_integer("filters", filters, minimum=1)
    check_integer("latent_channels", latent_channels, minimum=1)
    check_integer("random_state", random_state, minimum=0)
    height, width, channels = (int(size) for size in input_shape)
    seeds = iter(np.random.default_rng(int(random_state)).integers(0, 2**31 - 1, size=6))

    def convolution(units, *, strides=1, activation="relu", layer_name):
        return keras.layers.Conv2D(
            units, 3, strides=strides, padding="same", activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=int(next(seeds))),
            name=f"{name}_{layer_name}",
        )

    inputs = keras.Input(shape=(height, width, channels), name=f"{name}_input")
    x = convolution(filters, strides=2, layer_name="encode1")(inputs)
    x = convolution(2 * filters, strides=2, layer_name="encode2")(x)
    x = convolution(latent_channels, activation=None, layer_name="latent")(x)
    x = keras.layers.UpSampling2D(2, name=f"{name}_upsample1")(x)
    x = convolution(2 * filters, layer_name="decode1")(x)
    x = keras.layers.UpSampling2D(2, name=f"{name}_upsample2")(x)
    x = convolution(filters, layer_name="decode2")(x)
    extra_height = 4 * math.ceil(height / 4) - height
    extra_width = 4 * math.ceil(width / 4) - width
    x = keras.layers.Cropping2D(((0, extra_height), (0, extra_width)), name=f"{name}_crop")(x)
    outputs = convolution(channels, activation="sigmoid", layer_name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=name)


def train_class_autoencoders(
    train_images,
    train_labels,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    random_state: int = 0,
    learning_rate: float = 3e-3,
    max_images_per_class: int | None = None,
    filters: int = 16,
    latent_channels: int = 4,
) -> dict[int, keras.Model]:
    """One :func:`build_autoencoder` per class, trained on that class's images only.

    Each autoencoder minimises the binary cross-entropy between its input and its sigmoid
    reconstruction with Adam; on pixels in [0, 1] this leaves the all-background plateau that
    mean squared error sits on for the first hundreds of steps.

    Parameters
    ----------
    train_images : array of shape (M, H, W, C)
        uint8 pixels, or floating-point pixels in [0, 1]. Each class's images are taken as they
        are stored and converted to float32 one batch at a time.
    train_labels : int array of shape (M,)
        Class indices >= 0.
    epochs, batch_size : int >= 1, default 10 and 32
    random_state : int >= 0, default 0
        Seeds the weights, the subset and the shuffling of every class; global random state is
        left alone.
    learning_rate : float > 0, default 3e-3
    max_images_per_class : int >= 1 or None, default None
        Train each class on a random subset of at most this many images (None: all of them).
    filters, latent_channels : int >= 1
        Passed to :func:`build_autoencoder`.

    Returns
    -------
    dict mapping each class index present in ``train_labels`` to its trained keras.Model.
    """
    train_images, train_labels = check_training_set(train_images, train_labels)
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        check_integer(key, value, minimum=1)
    check_integer("random_state", random_state, minimum=0)
    if max_images_per_class is not None:
        check_integer("max_images_per_class", max_images_per_class, minimum=1)
    check_non_negative("learning_rate", learning_rate, allow_zero=False)
    autoencoders: dict[int, keras.Model] = {}
    for class_index in np.unique(train_labels).tolist():
        members = _class_members(train_labels, class_index, max_images_per_class,
                                 int(random_state))
        autoencoders[int(class_index)] = train_autoencoder(
            train_images[members], epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, random_state=_class_seed(random_state, class_index),
            filters=filters, latent_channels=latent_channels,
            name=f"autoencoder_class{class_index}")
    return autoencoders


def train_autoencoder(images, *, epochs: int, batch_size: int, learning_rate: float,
                      random_state: int, filters: int = 16, latent_channels: int = 4,
                      name: str = "autoencoder") -> keras.Model:
    """One :func:`build_autoencoder` trained on ``images`` (M, H, W, C), uint8 or in [0, 1].

    Minimises the binary cross-entropy between the input and its sigmoid reconstruction with
    Adam; on pixels in [0, 1] this leaves the all-background plateau that mean squared error sits
    on for the first hundreds of steps. ``random_state`` seeds the weights and the shuffling;
    global random state is left alone. The arguments are checked by the callers.
    """
    model = build_autoencoder(images.shape[1:], filters=filters, latent_channels=latent_channels,
                              random_state=random_state, name=name)
    # XLA would compile each model anew, which costs more than the few hundred steps it speeds up.
    model.compile(optimizer=keras.optimizers.Adam(float(learning_rate)),
                  loss="binary_crossentropy", jit_compile=False)
    batches = _ShuffledImageBatches(images, batch_size=int(batch_size), random_state=random_state)
    # The batches shuffle themselves by random_state; Keras' own shuffling of a PyDataset's batch
    # order draws from Python's global generator and would make training unrepeatable.
    model.fit(batches, epochs=int(epochs), verbose=0, shuffle=False)
    return model


def train_shared_autoencoder(train_images, train_labels, *, epochs: int = 10,
                             batch_size: int = 32, random_state: int = 0,
                             learning_rate: float = 3e-3, max_images_per_class: int | None = None,
                             filters: int = 16, latent_channels: int = 4) -> keras.Model:
    """One autoencoder trained on every class at once: the ``AE`` of IM2.

    Arguments as for :func:`train_class_autoencoders`; it sees the union of the per-class
    subsets (at most ``max_images_per_class`` per class), with its own seed.
    """
    train_images, train_labels = check_training_set(train_images, train_labels)
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        check_integer(key, value, minimum=1)
    check_integer("random_state", random_state, minimum=0)
    check_non_negative("learning_rate", learning_rate, allow_zero=False)
    if max_images_per_class is not None:
        check_integer("max_images_per_class", max_images_per_class, minimum=1)
    seed = _class_seed(random_state, _SHARED_SEED_KEY)
    members = np.concatenate([
        _class_members(train_labels, class_index, max_images_per_class, int(random_state))
        for class_index in np.unique(train_labels).tolist()])
    return train_autoencoder(np.asarray(train_images)[np.sort(members)], epochs=epochs,
                             batch_size=batch_size, learning_rate=learning_rate,
                             random_state=seed, filters=filters,
                             latent_channels=latent_channels, name="autoencoder_shared")


def _class_seed(random_state: int, class_index: int) -> int:
    """One seed per (random_state, class): adding a class does not change the others' models."""
    return int(np.random.SeedSequence([int(random_state), int(class_index)]).generate_state(1)[0])


def _class_members(train_labels, class_index: int, max_images: int | None,
                   random_state: int) -> np.ndarray:
    """Sorted positions of the class's training images, a seeded subset of at most
    ``max_images`` of them (None: all)."""
    members = np.flatnonzero(train_labels == class_index)
    if max_images is not None and len(members) > max_images:
        subset = np.random.default_rng(_class_seed(random_state, class_index)).choice(
            members, max_images, replace=False)
        members = np.sort(subset)
    return members


def save_class_autoencoders(autoencoders: Mapping[int, keras.Model],
                            folder: str | os.PathLike) -> None:
    """Write each class's autoencoder as ``<folder>/class_<k>.keras``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for class_index, autoencoder in autoencoders.items():
        autoencoder.save(_autoencoder_file(folder, class_index))


def load_class_autoencoders(folder: str | os.PathLike, num_classes: int) -> dict[int, keras.Model]:
    """The autoencoders :func:`save_class_autoencoders` wrote for classes 0..num_classes-1."""
    files = [_autoencoder_file(Path(folder), index)
             for index in range(check_integer("num_classes", num_classes, minimum=1))]
    return {index: keras.saving.load_model(check_model_file(file))
            for index, file in enumerate(files)}


def save_shared_autoencoder(autoencoder: keras.Model, folder: str | os.PathLike) -> None:
    """Write the all-class autoencoder as ``<folder>/shared.keras``."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    autoencoder.save(Path(folder) / SHARED_AUTOENCODER_FILE)


def load_shared_autoencoder(folder: str | os.PathLike) -> keras.Model:
    """The autoencoder :func:`save_shared_autoencoder` wrote."""
    return keras.saving.load_model(check_model_file(Path(folder) / SHARED_AUTOENCODER_FILE))


def _autoencoder_file(folder: Path, class_index: int) -> Path:
    return folder / f"class_{int(class_index)}.keras"


class _ShuffledImageBatches(keras.utils.PyDataset):
    """(x, x) float32 batches of one class's images, reshuffled every epoch by its own seed."""

    def __init__(self, images: np.ndarray, *, batch_size: int, random_state: int) -> None:
        super().__init__()
        self.images = images
        self.batch_size = batch_size
        self._rng = np.random.default_rng(random_state)
        self._order = self._rng.permutation(len(images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        rows = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
        batch = to_unit_float(self.images[rows], np.float32)
        return batch, batch

    def on_epoch_end(self) -> None:
        self._order = self._rng.permutation(len(self.images))
