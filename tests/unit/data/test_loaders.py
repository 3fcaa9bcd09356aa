"""Memory-mapped splits and the tf.data pipeline built on them."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from support.project import ROOT

from pixelflip.data.loaders import dataset_size, load_classes, load_split, make_dataset
from pixelflip.training.epochs import EpochClock

SIZE = 23  # not a multiple of the batch size, so the last batch is short
BENCHMARK = ROOT / "benchmarks" / "input_pipeline.py"


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


@pytest.fixture(scope="module")
def random_dir(tmp_path_factory):
    """A prepared train split of random uint8 images (0 and 255 included) labelled 0..N-1."""
    folder = tmp_path_factory.mktemp("random")
    images = np.random.default_rng(0).integers(0, 256, (SIZE, 4, 3, 2), dtype=np.uint8)
    images[0], images[1] = 0, 255
    np.save(folder / "train_images.npy", images)
    np.save(folder / "train_labels.npy", np.arange(SIZE, dtype=np.int64))
    (folder / "classes.json").write_text(json.dumps([str(index) for index in range(SIZE)]))
    return folder


def _order(dataset) -> np.ndarray:
    """The image indices of one pass over a ``random_dir`` dataset (its labels are indices)."""
    return np.concatenate([labels.numpy() for _, labels in dataset])


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
    with pytest.raises(FileNotFoundError, match="test_labels.npy does not exist"):
        dataset_size(tmp_path, "test")


def _shuffled(folder, *, random_state: int = 7, epoch_clock: EpochClock | None = None):
    return make_dataset(folder, "train", batch_size=5, shuffle=True, random_state=random_state,
                        epoch_clock=epoch_clock)


def test_the_order_of_a_pass_is_the_seeded_permutation_of_the_clock_epoch(random_dir):
    clock, other_clock = EpochClock(3), EpochClock(3)
    dataset = _shuffled(random_dir, epoch_clock=clock)

    epoch_3 = _order(dataset)
    np.testing.assert_array_equal(epoch_3, np.random.default_rng([7, 3]).permutation(SIZE))
    np.testing.assert_array_equal(_order(_shuffled(random_dir, epoch_clock=other_clock)), epoch_3)
    np.testing.assert_array_equal(_order(dataset), epoch_3)  # same epoch, same batches again
    clock.epoch = 4
    epoch_4 = _order(dataset)
    assert sorted(epoch_4) == list(range(SIZE)) and epoch_4.tolist() != epoch_3.tolist()
    clock.epoch = 3
    np.testing.assert_array_equal(_order(dataset), epoch_3)  # a resumed run sees the same
    assert _order(_shuffled(random_dir, random_state=8, epoch_clock=clock)).tolist() != (
        epoch_3.tolist()
    )


def test_the_clock_is_read_once_when_a_pass_begins(random_dir):
    clock = EpochClock(0)
    batches = iter(_shuffled(random_dir, epoch_clock=clock))
    first = next(batches)[1].numpy()
    clock.epoch = 9  # the next epoch's value arrives mid-pass: this pass must not change
    rest = [labels.numpy() for _, labels in batches]

    np.testing.assert_array_equal(
        np.concatenate([first, *rest]), np.random.default_rng([7, 0]).permutation(SIZE)
    )


def test_without_a_clock_each_pass_takes_the_next_epoch(random_dir):
    dataset = _shuffled(random_dir)
    passes = [_order(dataset) for _ in range(3)]

    for epoch, order in enumerate(passes):
        expected = _order(_shuffled(random_dir, epoch_clock=EpochClock(epoch)))
        np.testing.assert_array_equal(order, expected)
    assert len({tuple(order) for order in passes}) == 3


def test_batches_hold_every_stored_image_once_scaled_to_unit_range(random_dir):
    stored, _ = load_split(random_dir, "train")
    dataset = _shuffled(random_dir, epoch_clock=EpochClock(1))

    assert int(dataset.cardinality()) == 5  # ceil(23 / 5)
    images, indices = _epoch(dataset)
    assert sorted(indices) == list(range(SIZE))
    assert images.dtype == np.float32 and images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_allclose(images, stored[indices] / 255.0, rtol=1e-6, atol=0)


def test_unshuffled_batches_keep_file_order_whatever_the_epoch(random_dir):
    clock = EpochClock(5)
    dataset = make_dataset(random_dir, "train", batch_size=4, shuffle=False, random_state=3,
                           epoch_clock=clock)

    np.testing.assert_array_equal(_order(dataset), np.arange(SIZE))
    clock.epoch = 6
    np.testing.assert_array_equal(_order(dataset), np.arange(SIZE))


@pytest.mark.parametrize("random_state", [-1, 1.5, True])
def test_random_state_must_be_a_non_negative_integer(random_dir, random_state):
    with pytest.raises(ValueError, match="random_state must be an integer >= 0"):
        _shuffled(random_dir, random_state=random_state)


@pytest.mark.slow
def test_input_pipeline_benchmark_runs_end_to_end():
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--which", "digits", "--images", "128", "--epochs", "1",
         "--repeats", "1", "--batch-size", "32"],
        capture_output=True, text=True, check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    output = completed.stdout
    assert "digits: 128 MNIST digits" in output
    for feed in ("pipeline (make_dataset", "in memory (float32"):
        assert re.search(re.escape(feed) + r".*\d+\.\d images/s", output), output
    assert re.search(r"input pipeline cost -?\d+\.\d %", output), output
    assert "peak RSS" in output
