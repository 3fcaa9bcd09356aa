"""Validation throughput against the bare OpenCV decode rate, and peak memory at two sizes.

Builds a PetImages-layout zip of photo-sized JPEGs (or packs a real folder of class folders with
``--folder``), then, in one run on the same files:

1. bare decode: ``cv2.imdecode`` of every member read from the zip, nothing else, in one process
   and in ``--workers`` processes (the fair comparison: validation uses that many too);
2. validation: ``prepare_dataset`` with ``--workers`` (read, sha256, header checks, decode,
   orientation, colour conversion, resize, manifest, split arrays), from a cold start;
3. peak memory (RSS of the validating process plus its workers, sampled every 20 ms) at two
   archive sizes, to show memory does not grow with the number of images.

    python benchmarks/validation.py --images 2000 --workers 2
    python benchmarks/validation.py --folder ../shared/data/petimages-sample
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import psutil

from pixelflip.data.archive import read_class_members
from pixelflip.data.prepare import PreparedDataset, SplitSettings, prepare_dataset
from pixelflip.data.scan import InspectionSettings
from pixelflip.data.sources import download_source

_worker_zip: zipfile.ZipFile | None = None


def photo_jpeg(rng: np.random.Generator, width: int = 500, height: int = 375) -> bytes:
    """A JPEG with photo-like statistics: smooth shapes plus fine noise (about 30-60 KB)."""
    coarse = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 12, image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def write_photo_zip(path: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for index in range(count):
            label = ("Cat", "Dog")[index % 2]
            archive.writestr(f"PetImages/{label}/{index // 2}.jpg", photo_jpeg(rng))


def _open(zip_path: str) -> None:
    global _worker_zip
    cv2.setNumThreads(1)
    _worker_zip = zipfile.ZipFile(zip_path)


def _decode(names: list[str]) -> int:
    decoded = 0
    for name in names:
        data = np.frombuffer(_worker_zip.read(name), np.uint8)
        try:
            decoded += cv2.imdecode(data, cv2.IMREAD_COLOR) is not None
        except cv2.error:  # an empty file: OpenCV refuses the buffer instead of returning None
            pass
    return decoded


def bare_decode(zip_path: Path, workers: int, names: list[str]) -> tuple[float, int]:
    """Seconds to read each of ``names`` from the zip and ``cv2.imdecode`` it, nothing else,
    in ``workers`` processes (pool start included, as validation's is), and how many decoded."""
    chunks = [names[start : start + 32] for start in range(0, len(names), 32)]
    started = time.perf_counter()
    if workers == 1:
        _open(str(zip_path))
        decoded = sum(_decode(chunk) for chunk in chunks)
    else:
        context = multiprocessing.get_context("forkserver")
        with context.Pool(workers, initializer=_open, initargs=(str(zip_path),)) as pool:
            decoded = sum(pool.imap(_decode, chunks))
    return time.perf_counter() - started, decoded


def bare_decode_rate(zip_path: Path, workers: int) -> float:
    """Images per second of reading each member from the zip and ``cv2.imdecode`` alone."""
    names = [member.path for member in read_class_members(zip_path)]
    seconds, decoded = bare_decode(zip_path, workers, names)
    if decoded != len(names):
        raise RuntimeError(f"only {decoded} of {len(names)} benchmark images decoded")
    return len(names) / seconds


def timed_validation(
    zip_path: Path, out_dir: Path, workers: int, image_size: int
) -> tuple[float, PreparedDataset]:
    """Seconds of one cold ``prepare_dataset`` run writing ``out_dir``, and what it wrote."""
    started = time.perf_counter()
    result = prepare_dataset(
        zip_path, out_dir,
        inspection=InspectionSettings(image_size=image_size, color_mode="rgb", min_side=8),
        split=SplitSettings(val_fraction=0.15, test_fraction=0.15), random_state=0,
        workers=workers, progress=False,
    )
    return time.perf_counter() - started, result


def validation_rate(zip_path: Path, workers: int, image_size: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as out:
        seconds, result = timed_validation(zip_path, Path(out) / "prepared", workers, image_size)
    images = sum(result.status_counts[status] for status in ("kept", "converted"))
    return images / seconds, result.status_counts


def peak_memory_mb(zip_path: Path, workers: int, image_size: int) -> float:
    """Peak summed RSS of a fresh process validating ``zip_path`` and its workers."""
    code = (
        "import sys; from pathlib import Path; import tempfile\n"
        "from pixelflip.data.prepare import SplitSettings, prepare_dataset\n"
        "from pixelflip.data.scan import InspectionSettings\n"
        "with tempfile.TemporaryDirectory() as out:\n"
        "    prepare_dataset(Path(sys.argv[1]), Path(out) / 'p',"
        f" inspection=InspectionSettings(image_size={image_size}, color_mode='rgb', min_side=8),"
        " split=SplitSettings(val_fraction=0.15, test_fraction=0.15),"
        f" random_state=0, workers={workers}, progress=False)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(zip_path)])
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(process.pid)
        while not stop.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if process.wait() != 0:
        raise RuntimeError("the memory-measuring validation run failed")
    stop.set()
    sampler.join()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="synthetic photos to build")
    parser.add_argument("--folder", type=Path, help="a real folder of class folders instead")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--image-size", type=int, default=128)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if arguments.folder:
            record = download_source("folder", scratch / "raw", path=arguments.folder)
            zip_path = scratch / "raw" / record["archive"]
            what = f"{record['num_images']} photos from {arguments.folder}"
        else:
            zip_path = scratch / "photos.zip"
            write_photo_zip(zip_path, arguments.images)
            what = f"{arguments.images} synthetic 500x375 JPEGs"
        size_mb = zip_path.stat().st_size / 2**20
        print(f"{what}, zip {size_mb:.0f} MB, {arguments.workers} workers, "
              f"{multiprocessing.cpu_count()} cores, image_size {arguments.image_size}")

        bare_one = bare_decode_rate(zip_path, 1)
        bare = bare_decode_rate(zip_path, arguments.workers)
        validated, counts = validation_rate(zip_path, arguments.workers, arguments.image_size)
        print(f"bare cv2.imdecode, 1 process:          {bare_one:8.1f} images/s")
        print(f"bare cv2.imdecode, {arguments.workers} processes:        {bare:8.1f} images/s")
        print(f"validate (prepare_dataset), {arguments.workers} workers: {validated:8.1f} images/s"
              f"  ({counts})")
        print(f"validate / bare decode ({arguments.workers} processes): {validated / bare:.2f}")

        if not arguments.folder:
            small, large = arguments.images // 4, arguments.images
            small_zip = scratch / "small.zip"
            write_photo_zip(small_zip, small)
            memory_small = peak_memory_mb(small_zip, arguments.workers, arguments.image_size)
            memory_large = peak_memory_mb(zip_path, arguments.workers, arguments.image_size)
            print(f"peak RSS (process + workers): {small} images {memory_small:.0f} MB, "
                  f"{large} images {memory_large:.0f} MB (ratio {memory_large / memory_small:.2f}"
                  f" for {large / small:.0f}x the images)")


if __name__ == "__main__":
    main()
