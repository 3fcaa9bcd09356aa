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
import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
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
# prctl(2) option: the signal a process receives when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1

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
    # Closing this generator (or an error in its consumer) closes the chunk stream at once,
    # which stops the worker pool, instead of leaving that to garbage collection.
    with contextlib.closing(_run_chunks(str(archive_path), chunks, settings, workers)) as stream:
        for chunk_results in stream:
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
    # concurrent.futures, not multiprocessing.Pool: a Pool whose worker died mid-read (a SIGTERM
    # sent to the whole process group) can hang forever in terminate(); this executor notices
    # dead workers and its shutdown never waits on them.
    executor = concurrent.futures.ProcessPoolExecutor(
        min(workers, len(chunks)), mp_context=context, initializer=_open_worker_archive,
        initargs=(archive_path,),
    )
    try:
        pending: collections.deque = collections.deque()
        limit = workers * _CHUNKS_IN_FLIGHT_PER_WORKER
        for chunk in chunks:
            if len(pending) >= limit:
                yield pending.popleft().result()
            pending.append(executor.submit(_inspect_chunk, chunk, settings))
        while pending:
            yield pending.popleft().result()
    finally:
        # On an error or KeyboardInterrupt / SystemExit (how the stage frame delivers Ctrl-C
        # and SIGTERM) the queued chunks are dropped; a running chunk (32 images) finishes,
        # as the workers ignore SIGINT, and every worker exits before this returns.
        executor.shutdown(wait=True, cancel_futures=True)


def _open_worker_archive(archive_path: str) -> None:
    global _worker_archive
    _quiet_worker_signals()
    # One process per core already; OpenCV's own threads would only oversubscribe them.
    cv2.setNumThreads(1)
    _worker_archive = zipfile.ZipFile(archive_path)


def _quiet_worker_signals() -> None:
    """Make a pool worker leave stopping to its parent, and die with it.

    Ctrl-C reaches every process of the group; the parent turns it into a clean shutdown that
    terminates the pool, so a worker that raised KeyboardInterrupt itself would only print a
    traceback. SIGTERM keeps its default, a silent exit, so killing the process group ends
    the workers without a word. On Linux a worker is also sent SIGTERM when its parent process dies, so a killed
    stage leaves no worker writing into a closed pipe (the source of BrokenPipe tracebacks).
    """
    if multiprocessing.parent_process() is None:
        return  # inspecting in the stage's own process (workers=1): its handlers stay
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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
