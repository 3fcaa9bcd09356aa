"""Read prepared splits for training and explanations: memory-mapped arrays and tf.data.

Images stay on disk as uint8; batches are gathered from the memory map and scaled to float32
[0, 1] on the fly, so a split larger than memory trains without being loaded as one tensor. The
shuffled order of each pass is a function of the seed and the epoch (read from an
:class:`~pixelflip.training.epochs.EpochClock`), so a resumed training run sees the same batches as
an uninterrupted one. ``benchmarks/input_pipeline.py`` measures what this pipeline costs in
training throughput against the same model fed from memory.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from pixelflip.config.checks import check_integer
from pixelflip.data.prepare import SPLITS
from pixelflip.stage.inputs import InputFileError, load_npy_input, read_json_input, rebuild_hint

if TYPE_CHECKING:  # only for annotations: the loaders read any object's ``epoch``
    from pixelflip.training.epochs import EpochClock


def load_classes(prepared_dir: str | os.PathLike) -> list[str]:
    """Class names of a prepared dataset; label ``i`` means ``classes[i]``."""
    path = Path(prepared_dir) / "classes.json"
    classes = read_json_input(path)
    if not (isinstance(classes, list) and all(isinstance(name, str) for name in classes)):
        raise InputFileError(f"{path} holds {type(classes).__name__} where a list of class names "
                             f"was expected; {rebuild_hint(path)}.")
    return classes


def load_split(prepared_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split.

    Returns:
        ``(images, labels)``: images a read-only memory map, uint8 in [0, 255], shape
        (N, H, W, C); labels int64 class indices, shape (N,).
    """
    images_path, labels_path = _split_paths(prepared_dir, split)
    images = load_npy_input(images_path, mmap_mode="r")
    labels = load_npy_input(labels_path).astype(np.int64, copy=False)
    if len(images) != len(labels):
        raise InputFileError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            f"labels; {rebuild_hint(images_path)}."
        )
    return images, labels


def dataset_size(prepared_dir: str | os.PathLike, split: str) -> int:
    """Number of images in a split, read from the array header without loading the data."""
    _, labels_path = _split_paths(prepared_dir, split)
    return int(load_npy_input(labels_path, mmap_mode="r").shape[0])


def make_dataset(
    prepared_dir: str | os.PathLike,
    split: str,
    *,
    batch_size: int,
    shuffle: bool,
    random_state: int,
    epoch_clock: EpochClock | None = None,
) -> tf.data.Dataset:
    """Batches of one split for ``model.fit`` / ``model.predict``.

    Every iteration over the dataset is one pass over the split. With ``shuffle``, the order of
    a pass is ``np.random.default_rng([random_state, epoch]).permutation(N)``: a pure function of
    the seed and the epoch, never of how many passes this process happened to run before, so a
    training run resumed at epoch ``e`` sees exactly the batches an uninterrupted run saw there.

    Args:
        prepared_dir: folder written by ``prepare_dataset``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: images per batch (the last batch may be smaller).
        shuffle: a new order every pass, fixed by ``(random_state, epoch)``; without it the
            batches follow the file order.
        random_state: seed of the shuffle, an integer >= 0.
        epoch_clock: where ``epoch`` is read, once, when a pass begins (``model.fit`` starts a
            new pass every epoch, after ``on_epoch_begin``). Without a clock, ``epoch`` counts
            the passes this dataset has started: 0, 1, 2, ...; every iteration counts, even one
            abandoned after a batch, so a training run that must resume identically passes the
            clock its callbacks advance.

    Returns:
        A dataset of ``(images, labels)``: images float32 in [0, 1], shape (B, H, W, C);
        labels int64, shape (B,). Its cardinality is the number of batches.

    Raises:
        ValueError: ``batch_size`` is not a positive integer, ``random_state`` is negative or
            the split is unknown or inconsistent.
    """
    check_integer("batch_size", batch_size, minimum=1)
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or (
        random_state < 0
    ):
        raise ValueError(
            f"random_state must be an integer >= 0, got {random_state!r}; pass the params seed."
        )
    images, labels = load_split(prepared_dir, split)
    size, image_shape = len(labels), images.shape[1:]
    pass_order = _pass_order_function(size, bool(shuffle), int(random_state), epoch_clock)

    def gather(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # One copy from the memory map straight into the batch; np.take releases the GIL, so
        # parallel map calls overlap (mode="clip" because "raise" copies through a temporary,
        # and the indices are a permutation, always in range). The batch stays uint8: scaling
        # runs in the graph, outside the GIL, and a quarter of the bytes crosses from numpy.
        batch = np.empty((len(indices), *image_shape), np.uint8)
        np.take(images, indices, axis=0, out=batch, mode="clip")
        return batch, labels[indices]

    def load(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch_images, batch_labels = tf.numpy_function(
            gather, [indices], [tf.uint8, tf.int64], stateful=False
        )
        batch_images = tf.cast(batch_images, tf.float32) * (1.0 / 255.0)
        batch_images.set_shape((None, *image_shape))
        batch_labels.set_shape((None,))
        return batch_images, batch_labels

    def index_batches(order: tf.Tensor) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    # A one-element dataset whose map runs once per iteration: that is where a pass begins and
    # its order is drawn. stateful=True: the order depends on the clock, not only on the input,
    # so tf.data must neither cache nor constant-fold it.
    order = tf.data.Dataset.range(1).map(
        lambda _: tf.ensure_shape(
            tf.numpy_function(pass_order, [], tf.int64, stateful=True), (size,)
        )
    )
    dataset = order.flat_map(index_batches)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-size // batch_size)))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _pass_order_function(
    size: int, shuffle: bool, random_state: int, epoch_clock: EpochClock | None
) -> Callable[[], np.ndarray]:
    """The numpy function that draws the order of one pass (int64 indices, shape (size,))."""
    passes_started = itertools.count()

    def pass_order() -> np.ndarray:
        epoch = next(passes_started) if epoch_clock is None else int(epoch_clock.epoch)
        if not shuffle:
            return np.arange(size, dtype=np.int64)
        return np.random.default_rng([random_state, epoch]).permutation(size).astype(np.int64)

    return pass_order


def _split_paths(prepared_dir: str | os.PathLike, split: str) -> tuple[Path, Path]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    prepared_dir = Path(prepared_dir)
    return prepared_dir / f"{split}_images.npy", prepared_dir / f"{split}_labels.npy"
