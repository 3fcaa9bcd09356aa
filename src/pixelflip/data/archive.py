"""The raw-archive format every source ends in: a zip whose files sit in class folders.

A member's class is the name of the folder it sits in directly, so wrapper folders such as
``PetImages/Cat/1.jpg`` (the Kaggle layout) and ``Cat/1.jpg`` both give class ``Cat``. Files at the
top level belong to no class (label ``""``) and are skipped by validation.

Archives come from the internet, so listing one also checks it is safe to read: a member with an
absolute path or ``..`` (path traversal), or sizes that only a zip bomb has, refuses the whole
archive before any member is read. Nothing is ever extracted to disk, so the check guards the
members' names for every tool a user might point at the archive, not only ours.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from pixelflip.config.checks import check_non_negative

# Extensions validation tries to decode; every other file is recorded as skipped.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Folders that archivers add beside the real content (macOS resource forks); never data.
IGNORED_FOLDERS = ("__MACOSX",)

DEFAULT_MAX_COMPRESSION_RATIO = 100.0
DEFAULT_MAX_UNCOMPRESSED_BYTES = 20 * 10**9
# Tiny members compress absurdly well for innocent reasons (a page of blanks); only members
# this large count towards the compression-ratio check.
_RATIO_CHECK_MIN_BYTES = 1 << 20


class UnsafeArchiveError(ValueError):
    """An archive refused as a whole: path traversal or zip-bomb sizes."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Sizes beyond which an archive is refused as a zip bomb (``UnsafeArchiveError``).

    Attributes:
        max_compression_ratio: refuse the archive if a member over 1 MiB unpacked is
            compressed more than this (uncompressed / compressed bytes); finite and > 0.
        max_uncompressed_bytes: refuse the archive if its members unpack to more than this
            many bytes; finite and > 0.

    Raises:
        ValueError: a limit that is not a finite number > 0 (NaN or infinity included).
    """

    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    max_uncompressed_bytes: float = DEFAULT_MAX_UNCOMPRESSED_BYTES

    def __post_init__(self) -> None:
        for field in ("max_compression_ratio", "max_uncompressed_bytes"):
            check_non_negative(field, getattr(self, field), allow_zero=False)

    @classmethod
    def of(cls, max_compression_ratio: float, max_uncompressed_gb: float) -> ArchiveLimits:
        """The limits as params.yaml's ``validate`` section states them (size in GB)."""
        return cls(max_compression_ratio=max_compression_ratio,
                   max_uncompressed_bytes=max_uncompressed_gb * 1e9)


@dataclass(frozen=True)
class ArchiveMember:
    """One file in a raw archive.

    Attributes:
        path: the member name inside the zip, with ``/`` separators.
        label: the name of the folder the file sits in directly, or ``""`` at the top level.
        size: uncompressed size in bytes.
        is_dir: always False in listings (directories are not listed); kept so that callers
            handling raw ``zipfile`` entries can use the same type.
    """

    path: str
    label: str
    size: int
    is_dir: bool = False

    @property
    def extension(self) -> str:
        return file_extension(self.path)


def file_extension(name: str | os.PathLike) -> str:
    """Lower-case extension of a file name including the dot, ``""`` when there is none."""
    return PurePosixPath(str(name).replace("\\", "/")).suffix.lower()


def is_image_name(name: str | os.PathLike) -> bool:
    """Whether the file name has an image extension (content is not looked at)."""
    return file_extension(name) in IMAGE_EXTENSIONS


def class_of(member_name: str) -> str:
    """Class folder of a member name: its immediate parent folder, ``""`` at the top level."""
    return PurePosixPath(member_name.replace("\\", "/")).parent.name


def read_class_members(
    zip_path: str | os.PathLike, *, limits: ArchiveLimits = ArchiveLimits()
) -> list[ArchiveMember]:
    """List the files of a class-folder zip, sorted by member name, after checking it is safe.

    Args:
        zip_path: path to the zip.
        limits: the zip-bomb limits (compression ratio of a member, total unpacked bytes).

    Returns:
        One ``ArchiveMember`` per file (directories and ``__MACOSX`` metadata left out), sorted
        by ``path`` so that everything downstream sees the same order whatever order the zip
        was written in.

    Raises:
        ValueError: if the file does not exist or is not a zip.
        UnsafeArchiveError: for a member path that is absolute or contains ``..``, or sizes
            beyond the limits; the message names the member and the limit.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ValueError(f"Archive {zip_path} does not exist; expected a .zip of class folders.")
    if not zipfile.is_zipfile(zip_path):
        raise ValueError(f"Archive {zip_path} is not a zip file; expected a .zip of class folders.")
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
    check_archive_safety(zip_path, infos, limits=limits)
    members = [
        ArchiveMember(path=info.filename, label=class_of(info.filename), size=info.file_size)
        for info in infos
        if not info.is_dir() and not _is_ignored(info.filename)
    ]
    return sorted(members, key=lambda member: member.path)


def check_archive_safety(
    zip_path: str | os.PathLike, infos: Iterable[zipfile.ZipInfo], *, limits: ArchiveLimits
) -> None:
    """Raise ``UnsafeArchiveError`` for path traversal or zip-bomb sizes; see read_class_members.

    Sizes are the ones the zip declares; ``zipfile`` never returns more bytes than a member
    declares (and fails its CRC check if the data disagrees), so the declared sizes bound what
    reading the archive can cost.
    """
    max_compression_ratio = limits.max_compression_ratio
    max_uncompressed_bytes = limits.max_uncompressed_bytes
    total = 0
    for info in infos:
        name = info.filename
        if _is_unsafe_path(name):
            raise UnsafeArchiveError(
                f"Refusing archive {zip_path}: member {name!r} has an absolute path or '..', "
                "which could write outside the target folder (path traversal); repack the "
                "archive with relative class-folder paths."
            )
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= _RATIO_CHECK_MIN_BYTES and ratio > max_compression_ratio:
            raise UnsafeArchiveError(
                f"Refusing archive {zip_path}: member {name!r} unpacks {info.file_size:,} bytes "
                f"from {info.compress_size:,} (ratio {ratio:,.0f} > "
                f"validate.max_compression_ratio {max_compression_ratio:g}), the signature of a "
                "zip bomb; if the archive is genuine, raise validate.max_compression_ratio."
            )
    if total > max_uncompressed_bytes:
        raise UnsafeArchiveError(
            f"Refusing archive {zip_path}: its members unpack to {total:,} bytes, more than "
            f"validate.max_uncompressed_gb allows ({max_uncompressed_bytes / 1e9:g} GB); if the "
            "archive is genuine, raise validate.max_uncompressed_gb."
        )


def iter_member_bytes(
    zip_path: str | os.PathLike, members: Iterable[ArchiveMember]
) -> Iterator[tuple[ArchiveMember, bytes]]:
    """Yield ``(member, content)`` for each member, reading the zip lazily (never extracting).

    Only one member's bytes are in memory at a time, so archives larger than memory work.
    """
    with zipfile.ZipFile(zip_path) as archive:
        for member in members:
            yield member, archive.read(member.path)


def _is_unsafe_path(member_name: str) -> bool:
    name = member_name.replace("\\", "/")
    drive_letter = len(name) > 1 and name[1] == ":"
    return name.startswith("/") or drive_letter or ".." in PurePosixPath(name).parts


def _is_ignored(member_name: str) -> bool:
    parts = PurePosixPath(member_name.replace("\\", "/")).parts
    return any(part in IGNORED_FOLDERS for part in parts)
