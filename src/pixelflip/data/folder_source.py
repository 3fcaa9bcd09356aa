"""The files of a local folder source, and which symbolic links in it are followed.

The ``folder`` source copies every file under its folder into the raw archive, which DVC then
caches and may push to a shared remote. A symbolic link would copy whatever it points to, so a
link to ``~/.ssh/id_rsa`` or to another dataset would quietly publish it. The rule:

- a link to a file inside the folder is followed (datasets built with links to shared images
  keep working; ``validate`` drops the exact duplicates this makes);
- a link that leaves the folder, points nowhere, or points to a folder is refused with the link
  and its target named. Folder links are never followed: they can loop (``Cat/all -> ..``) and
  would put one set of images under two classes.
"""

from __future__ import annotations

import os
from pathlib import Path

from pixelflip.data.archive import IGNORED_FOLDERS


def folder_files(folder: str | os.PathLike) -> list[Path]:
    """The regular files under ``folder`` (links to files inside it included), in member order.

    ``__MACOSX`` folders are left out. The order is that of the files' paths relative to
    ``folder`` in ``/`` form, the order zip members sort in.

    Raises:
        ValueError: a symbolic link that leaves ``folder``, is broken, or points to a folder;
            the message names the link and its target.
    """
    folder = Path(folder)
    root = folder.resolve()
    files = []
    for directory, subfolders, names in os.walk(folder, followlinks=False):
        directory = Path(directory)
        subfolders[:] = [name for name in subfolders if name not in IGNORED_FOLDERS]
        for name in subfolders:
            if (directory / name).is_symlink():
                _refuse_link(folder, directory / name, "a folder; folder links are not followed")
        for name in names:
            path = directory / name
            if path.is_symlink():
                _check_file_link(folder, root, path)
            if path.is_file():
                files.append(path)
    return sorted(files, key=lambda file: file.relative_to(folder).as_posix())


def _check_file_link(folder: Path, root: Path, link: Path) -> None:
    target = link.resolve()
    if not target.exists():
        _refuse_link(folder, link, "nothing (the link is broken)")
    if not target.is_relative_to(root):
        _refuse_link(folder, link, "a file outside the folder")
    if not target.is_file():
        _refuse_link(folder, link, "something that is not a regular file")


def _refuse_link(folder: Path, link: Path, what: str) -> None:
    raise ValueError(
        f"Folder source {str(folder)!r}: the symbolic link {link} -> {os.readlink(link)} points "
        f"to {what}, which would be copied into the raw archive and DVC's cache; replace the "
        "link with a copy of the file inside the folder, or remove it."
    )
