"""The raw-archive format every source ends in: a zip whose files sit in class folders.

A member's class is the name of the folder it sits in directly, so wrapper folders such as
``PetImages/Cat/1.jpg`` (the Kaggle layout) and ``Cat/1.jpg`` both give class ``Cat``. Files at the
top level belong to no class (label ``""``) and are skipped by validation.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

# Extensions validation tries to decode; every other file is recorded as skipped.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Folders that archivers add beside the real content (macOS resource forks); never data.
IGNORED_FOLDERS = ("__MACOSX",)


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


def read_class_members(zip_path: str | os.PathLike) -> list[ArchiveMember]:
    """List the files of a class-folder zip, sorted by member name.

    Args:
        zip_path: path to the zip.

    Returns:
        One ``ArchiveMember`` per file (directories and ``__MACOSX`` metadata left out), sorted
        by ``path`` so that everything downstream sees the same order whatever order the zip
        was written in.

    Raises:
        ValueError: if the file does not exist or is not a zip.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ValueError(f"Archive {zip_path} does not exist; expected a .zip of class folders.")
    if not zipfile.is_zipfile(zip_path):
        raise ValueError(f"Archive {zip_path} is not a zip file; expected a .zip of class folders.")
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
    members = [
        ArchiveMember(path=info.filename, label=class_of(info.filename), size=info.file_size)
        for info in infos
        if not info.is_dir() and not _is_ignored(info.filename)
    ]
    return sorted(members, key=lambda member: member.path)


def iter_member_bytes(
    zip_path: str | os.PathLike, members: Iterable[ArchiveMember]
) -> Iterator[tuple[ArchiveMember, bytes]]:
    """Yield ``(member, content)`` for each member, reading the zip lazily (never extracting).

    Only one member's bytes are in memory at a time, so archives larger than memory work.
    """
    with zipfile.ZipFile(zip_path) as archive:
        for member in members:
            yield member, archive.read(member.path)


def _is_ignored(member_name: str) -> bool:
    parts = PurePosixPath(member_name.replace("\\", "/")).parts
    return any(part in IGNORED_FOLDERS for part in parts)
