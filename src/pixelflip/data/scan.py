"""Stream archive members through inspection and resizing, in parallel, in archive order.

Decoding photos is the cost of the validate stage, so it runs in worker processes, one per core.
Each worker opens the zip once and reads only the members it is given; results (a manifest record
and the already resized image, a few KB) come back in member order, so the output is identical
whatever the number of workers. At most a few chunks per worker are in flight, which bounds
memory by the chunk size, not by the archive.

Workers are started with ``forkserver`` where the platform has it: forking a process that already
runs threads (TensorFlow, OpenCV's pool, a test runner) can deadlock the child.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pixelflip.config.checks import check_integer
from pixelflip.data.archive import ArchiveMember
from pixelflip.data.inspect import COLOR_MODES, blank_record, inspect_image_bytes

# Members per task: large enough that inter-process overhead is small next to decoding,
# small enough that a few chunks in flight per worker stay a few MB.
CHUNK_SIZE = 32
_CHUNKS_IN_FLIGHT_PER_WORKER = 4
DEFAULT_MAX_PIXELS = 40_000_000

_worker_archive: zipfile.ZipFile | None = None


@dataclass(frozen=True)
class InspectionSettings:
    """How each member is judged and stored.

    Attributes:
        image_size: side in pixels of the square images returned, an integer >= 1.
        color_mode: ``"grayscale"`` or ``"rgb"``.
        min_side: images with a shorter side below this are quarantined; an integer >= 1.
        max_pixels: images with more pixels (decompression bombs) are quarantined without a
            full decode; an integer >= 1.

    Raises:
        ValueError: a field out of its range, or an unknown ``color_mode``.
    """

    image_size: int
    color_mode: str
    min_side: int
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        check_integer("image_size", self.image_size, minimum=1)
        check_integer("min_side", self.min_side, minimum=1)
        if self.color_mode not in COLOR_MODES:
            raise ValueError(
                f"color_mode must be one of {list(COLOR_MODES)}, got {self.color_mode!r}."
            )
        check_integer("max_pixels", self.max_pixels, minimum=1)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(image_size, image_size, C) of a stored image: C = 1 for grayscale, 3 for rgb."""
        channels = 1 if self.color_mode == "grayscale" else 3
        return (self.image_size, self.image_size, channels)


def default_workers() -> int:
    """The cores this process may use (CPU affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def scan_members(
    archive_path: str | os.PathLike,
    members: Sequence[ArchiveMember],
    settings: InspectionSettings,
    *,
    workers: int | None = None,
) -> Iterator[tuple[ArchiveMember, dict, np.ndarray | None]]:
    """Inspect members of a zip and yield ``(member, record, image)`` in the order given.

    Args:
        archive_path: the zip.
        members: the members to read (from ``read_class_members``).
        settings: inspection settings.
        workers: processes to use; None = every core; 1 inspects in this process.

    Yields:
        ``record`` as from ``inspect_image_bytes`` (a member the zip cannot read, e.g. a CRC
        error, is ``quarantined`` with reason ``"unreadable member: ..."``), and ``image``
        uint8 (image_size, image_size, C) resized, or None when the member is not usable.
    """
    workers = default_workers() if workers is None else workers
    paths = [member.path for member in members]
    chunks = [paths[start : start + CHUNK_SIZE] for start in range(0, len(paths), CHUNK_SIZE)]
    position = 0
    for chunk_results in _run_chunks(str(archive_path), chunks, settings, workers):
        for record, image in chunk_results:
            yield members[position], record, image
            position += 1


def _run_chunks(archive_path: str, chunks: list[list[str]], settings, workers: int):
    if workers <= 1 or len(chunks) <= 1:
        _open_worker_archive(archive_path)
        try:
            for chunk in chunks:
                yield _inspect_chunk(chunk, settings)
        finally:
            _close_worker_archive()
        return

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with context.Pool(
        min(workers, len(chunks)), initializer=_open_worker_archive, initargs=(archive_path,)
    ) as pool:
        pending: collections.deque = collections.deque()
        limit = workers * _CHUNKS_IN_FLIGHT_PER_WORKER
        for chunk in chunks:
            if len(pending) >= limit:
                yield pending.popleft().get()
            pending.append(pool.apply_async(_inspect_chunk, (chunk, settings)))
        while pending:
            yield pending.popleft().get()


def _open_worker_archive(archive_path: str) -> None:
    global _worker_archive
    # One process per core already; OpenCV's own threads would only oversubscribe them.
    cv2.setNumThreads(1)
    _worker_archive = zipfile.ZipFile(archive_path)


def _close_worker_archive() -> None:
    global _worker_archive
    if _worker_archive is not None:
        _worker_archive.close()
        _worker_archive = None


def _inspect_chunk(paths: list[str], settings: InspectionSettings) -> list:
    return [_inspect_member(path, settings) for path in paths]


def _inspect_member(path: str, settings: InspectionSettings) -> tuple[dict, np.ndarray | None]:
    try:
        data = _worker_archive.read(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        reason = f"unreadable member: {type(error).__name__}"
        return blank_record(format="unknown", status="quarantined", reason=reason), None
    record, image = inspect_image_bytes(
        data,
        name=path,
        min_side=settings.min_side,
        color_mode=settings.color_mode,
        max_pixels=settings.max_pixels,
        target_size=settings.image_size,
    )
    if image is not None:
        image = resize_image(image, settings.image_size)
    return record, image


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, C) uint8 to (size, size, C).

    Area averaging when shrinking by 2x or more avoids aliasing; below that, bilinear is as
    good and several times faster (a JPEG decoded at reduced DCT scale arrives within 2x).
    """
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    shrinking_a_lot = height >= 2 * size and width >= 2 * size
    interpolation = cv2.INTER_AREA if shrinking_a_lot else cv2.INTER_LINEAR
    resized = cv2.resize(image, (size, size), interpolation=interpolation)
    return resized.reshape(size, size, image.shape[2])
