"""Memory-mapped splits and the tf.data pipeline built on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixelflip.data.loaders import dataset_size, load_classes, load_split, make_dataset

SIZE = 23  # not a multiple of the batch size, so the last batch is short


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    """A prepared folder whose image i is filled with value i and labelled i % 3."""
    folder = tmp_path_factory.mktemp("prepared")
    for split, count in (("train", SIZE), ("val", 5), ("test", 4)):
        values = np.arange(count, dtype=np.uint8) * 10
        images = np.broadcast_to(values[:, None, None, None], (count, 6, 5, 3))
        np.save(folder / f"{split}_images.npy", images)
        np.save(folder / f"{split}_labels.npy", np.arange(count, dtype=np.int64) % 3)
    (folder / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    return folder


def _epoch(dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(images), np.concatenate(labels)


def test_load_split_is_a_read_only_memory_map(prepared_dir):
    images, labels = load_split(prepared_dir, "val")

    assert isinstance(images, np.memmap) and not images.flags.writeable
    assert images.shape == (5, 6, 5, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2, 0, 1]
    assert load_classes(prepared_dir) == ["a", "b", "c"]
    assert dataset_size(prepared_dir, "train") == SIZE


def test_dataset_yields_scaled_float_batches_aligned_with_labels(prepared_dir):
    dataset = make_dataset(prepared_dir, "train", batch_size=8, shuffle=False, random_state=0)

    batches = list(dataset)
    assert [tuple(x.shape) for x, _ in batches] == [(8, 6, 5, 3), (8, 6, 5, 3), (7, 6, 5, 3)]
    images, labels = _epoch(dataset)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert images.min() >= 0.0 and images.max() <= 1.0
    indices = np.rint(images[:, 0, 0, 0] * 255 / 10).astype(int)
    np.testing.assert_array_equal(indices, np.arange(SIZE))
    np.testing.assert_array_equal(labels, np.arange(SIZE) % 3)
    np.testing.assert_allclose(images[4], np.full((6, 5, 3), 40 / 255, np.float32))


def test_shuffled_order_depends_only_on_the_seed(prepared_dir):
    def order(dataset) -> np.ndarray:
        images, labels = _epoch(dataset)
        indices = np.rint(images[:, 0, 0, 0] * 255 / 10).astype(int)
        np.testing.assert_array_equal(labels, indices % 3)  # shuffling keeps pairs together
        return indices

    def shuffled(seed: int):
        return make_dataset(prepared_dir, "train", batch_size=4, shuffle=True, random_state=seed)

    dataset = shuffled(5)
    first, second_epoch = order(dataset), order(dataset)
    again, other = order(shuffled(5)), order(shuffled(6))

    assert sorted(first) == list(range(SIZE))
    assert first.tolist() != list(range(SIZE))
    np.testing.assert_array_equal(first, again)
    assert first.tolist() != other.tolist()
    assert sorted(second_epoch) == list(range(SIZE)) and second_epoch.tolist() != first.tolist()


def test_bad_split_and_batch_size_are_rejected(prepared_dir, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(prepared_dir, "validation")
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(prepared_dir, "train", batch_size=0, shuffle=False, random_state=0)
    with pytest.raises(FileNotFoundError, match="validate stage"):
        dataset_size(tmp_path, "test")
