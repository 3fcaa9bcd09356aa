"""Read prepared splits for training and explanations: memory-mapped arrays and tf.data.

Images stay on disk as uint8; batches are gathered from the memory map and scaled to float32
[0, 1] on the fly, so a split larger than memory trains without being loaded as one tensor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pixelflip.data.inspect import require_positive_int  # noqa: E402
from pixelflip.data.prepare import SPLITS  # noqa: E402


def load_classes(prepared_dir: str | os.PathLike) -> list[str]:
    """Class names of a prepared dataset; label ``i`` means ``classes[i]``."""
    path = Path(prepared_dir) / "classes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the validate stage to prepare data.")
    return list(json.loads(path.read_text()))


def load_split(prepared_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split.

    Returns:
        ``(images, labels)``: images a read-only memory map, uint8 in [0, 255], shape
        (N, H, W, C); labels int64 class indices, shape (N,).
    """
    images_path, labels_path = _split_paths(prepared_dir, split)
    images = np.load(images_path, mmap_mode="r")
    labels = np.load(labels_path).astype(np.int64, copy=False)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            f"labels; rerun the validate stage."
        )
    return images, labels


def dataset_size(prepared_dir: str | os.PathLike, split: str) -> int:
    """Number of images in a split, read from the array header without loading the data."""
    _, labels_path = _split_paths(prepared_dir, split)
    return int(np.load(labels_path, mmap_mode="r").shape[0])


def make_dataset(
    prepared_dir: str | os.PathLike,
    split: str,
    *,
    batch_size: int,
    shuffle: bool,
    random_state: int,
) -> tf.data.Dataset:
    """Batches of one split for ``model.fit`` / ``model.predict``.

    Args:
        prepared_dir: folder written by ``prepare_dataset``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: images per batch (the last batch may be smaller).
        shuffle: reshuffle the order every epoch; the sequence of orders is fixed by
            ``random_state``, so two datasets made with the same seed yield the same batches.
        random_state: seed of the shuffle.

    Returns:
        A dataset of ``(images, labels)``: images float32 in [0, 1], shape (B, H, W, C);
        labels int64, shape (B,).
    """
    require_positive_int("batch_size", batch_size)
    images, labels = load_split(prepared_dir, split)
    image_shape = images.shape[1:]

    def gather(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Sorted reads walk the memory map forwards; the inverse permutation restores the
        # shuffled order.
        order = np.argsort(indices, kind="stable")
        batch = np.empty((len(indices), *image_shape), np.float32)
        batch[order] = images[indices[order]]
        batch *= 1.0 / 255.0
        return batch, labels[indices]

    def load(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch_images, batch_labels = tf.numpy_function(
            gather, [indices], [tf.float32, tf.int64], stateful=False
        )
        batch_images.set_shape((None, *image_shape))
        batch_labels.set_shape((None,))
        return batch_images, batch_labels

    dataset = tf.data.Dataset.range(len(labels))
    if shuffle:
        dataset = dataset.shuffle(
            len(labels), seed=int(random_state), reshuffle_each_iteration=True
        )
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _split_paths(prepared_dir: str | os.PathLike, split: str) -> tuple[Path, Path]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    prepared_dir = Path(prepared_dir)
    paths = (prepared_dir / f"{split}_images.npy", prepared_dir / f"{split}_labels.npy")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist; run the validate stage to prepare data."
            )
    return paths
