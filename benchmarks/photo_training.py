"""The photo profile's training cost: networks against each other, memory against data size.

Two measurements, each a comparison inside one run (the machines are shared and noisy, so the
ratio is the figure to quote):

1. ``--part speed``: training images/s of the photo profile's network (``separable_resnet`` at
   its ``input_size``) against ``simple_cnn`` with the filters the profile used before and the
   pretrained route's ``mobilenet_v2`` (random weights: ImageNet weights cost the same), on the
   same 128x128 RGB batches, alternating A B C A B C. Random pixels: speed does not depend on
   them.
2. ``--part memory``: the peak anonymous memory (``RssAnon``: what the process itself holds, not
   the page cache of the memory-mapped splits, which the kernel can drop) of one epoch of the
   training input pipeline (``load_training_data`` as the ``train`` stage calls it: memory-mapped
   uint8 splits, gathered per batch, the profile's augmentation) at two data sizes, each in a
   fresh process. Flat means the full 25,000-photo archive needs no more memory than 10,000.

    python benchmarks/photo_training.py --part speed
    python benchmarks/photo_training.py --part memory --sizes 10000 25000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from input_pipeline import CONV_FILTERS  # benchmarks/ is on sys.path: this script's folder

from pixelflip.config.profiles import profile_path, read_profile

PROFILE = "cats-vs-dogs"
IMAGE_SIDE = 128
# What profiles/cats-vs-dogs.yaml trained before separable_resnet: the baseline to beat.
SIMPLE_CNN_FILTERS = CONV_FILTERS["photos"]
SEED = 0


def photo_settings() -> dict:
    """The training section of the photo profile, as the pipeline folder uses it."""
    return read_profile(profile_path(PROFILE))["train"]


def _train_images_per_second(model, images: np.ndarray, labels: np.ndarray,
                             batch_size: int) -> float:
    started = time.perf_counter()
    model.fit(images, labels, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return len(labels) / (time.perf_counter() - started)


def measure_speed(images: int, repeats: int) -> dict:
    """Median training images/s of both networks, measured alternately on the same batches."""
    from pixelflip.models.backbones import build_classifier
    from pixelflip.training.classifier import compile_classifier

    train = photo_settings()
    shape = (IMAGE_SIDE, IMAGE_SIDE, 3)
    models = {
        f"separable_resnet {train['conv_filters']} at {train['input_size']} px": build_classifier(
            shape, 2, backbone="separable_resnet", conv_filters=train["conv_filters"],
            input_size=train["input_size"]),
        f"simple_cnn {list(SIMPLE_CNN_FILTERS)} at {IMAGE_SIDE} px": build_classifier(
            shape, 2, backbone="simple_cnn", conv_filters=SIMPLE_CNN_FILTERS),
        f"mobilenet_v2 at {train['input_size']} px": build_classifier(
            shape, 2, backbone="mobilenet_v2", input_size=train["input_size"]),
    }
    rng = np.random.default_rng(SEED)
    pixels = rng.random((images, *shape), dtype=np.float32)
    labels = np.arange(images) % 2
    rates: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        compile_classifier(model, learning_rate=1e-3)
        _train_images_per_second(model, pixels[:train["batch_size"] * 2], labels[:64],
                                 train["batch_size"])  # compiles the training step
    for repeat in range(repeats):
        for name, model in models.items():
            rates[name].append(_train_images_per_second(model, pixels, labels,
                                                        train["batch_size"]))
            print(f"  repeat {repeat + 1}: {name}: {rates[name][-1]:.1f} images/s", flush=True)
    medians = {name: float(np.median(values)) for name, values in rates.items()}
    first = next(iter(medians))
    return {"images_per_second": medians, "batch_size": train["batch_size"],
            "speed_ratio": {name: medians[first] / rate for name, rate in medians.items()},
            "params": {name: int(model.count_params()) for name, model in models.items()}}


def _anonymous_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no RssAnon line (Linux only)")


def epoch_memory(count: int) -> dict:
    """In this process: write ``count`` photos as a prepared train split, run one epoch of the
    training input pipeline over it, and return the peak anonymous memory."""
    from pixelflip.config.params import AugmentParams
    from pixelflip.training.run import load_training_data

    train = photo_settings()
    augment = AugmentParams(**train["augment"])
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder)
        rng = np.random.default_rng(SEED)
        # Written in chunks straight into a memory map, so writing costs no memory either.
        for split, size in (("train", count), ("val", 64), ("test", 64)):
            images = np.lib.format.open_memmap(prepared / f"{split}_images.npy", mode="w+",
                                               dtype=np.uint8,
                                               shape=(size, IMAGE_SIDE, IMAGE_SIDE, 3))
            for start in range(0, size, 1000):
                stop = min(start + 1000, size)
                images[start:stop] = rng.integers(0, 256, (stop - start, IMAGE_SIDE, IMAGE_SIDE,
                                                           3), dtype=np.uint8)
            images.flush()
            del images
            np.save(prepared / f"{split}_labels.npy", np.arange(size, dtype=np.int64) % 2)
        (prepared / "classes.json").write_text(json.dumps(["Cat", "Dog"]))
        before = _anonymous_kib()
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _anonymous_kib())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        data = load_training_data(prepared, batch_size=train["batch_size"], random_state=SEED,
                                  augment=augment)
        seen = sum(int(labels.shape[0]) for _, labels in data.datasets["train"])
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return {"photos": count, "seen": seen, "seconds": round(seconds, 1),
            "peak_anonymous_mb": round(peak[0] / 1024, 1),
            "before_mb": round(before / 1024, 1)}


def measure_memory(sizes: list[int]) -> list[dict]:
    """:func:`epoch_memory` of each size, each in a fresh process (peaks do not carry over)."""
    results = []
    for count in sizes:
        output = subprocess.run([sys.executable, __file__, "--epoch-memory", str(count)],
                                check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(f"  {count} photos: peak {results[-1]['peak_anonymous_mb']} MB anonymous "
              f"({results[-1]['seconds']} s for the epoch)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("speed", "memory"), default="speed")
    parser.add_argument("--images", type=int, default=256, help="speed: images per timed fit")
    parser.add_argument("--repeats", type=int, default=3, help="speed: timed fits per network")
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 25_000],
                        help="memory: the two numbers of training photos")
    parser.add_argument("--epoch-memory", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.epoch_memory:
        print(json.dumps(epoch_memory(arguments.epoch_memory)))
        return
    if arguments.part == "speed":
        result = measure_speed(arguments.images, arguments.repeats)
        print("\n| network | parameters | training images/s | photo network's speed / this |"
              "\n|---|---:|---:|---:|")
        for name, rate in result["images_per_second"].items():
            print(f"| {name} | {result['params'][name]:,} | {rate:.1f} | "
                  f"{result['speed_ratio'][name]:.2f} |")
        return
    small, large = measure_memory(arguments.sizes)
    print("\n| training photos | one epoch | peak anonymous memory |\n|---:|---:|---:|")
    for row in (small, large):
        print(f"| {row['photos']:,} | {row['seconds']} s | {row['peak_anonymous_mb']} MB |")
    print(f"\nratio ({large['photos']:,} / {small['photos']:,} photos, same run): "
          f"{large['peak_anonymous_mb'] / small['peak_anonymous_mb']:.2f}")


if __name__ == "__main__":
    main()
