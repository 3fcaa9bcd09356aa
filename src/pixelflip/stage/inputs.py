"""Readers for the files one stage hands the next: each error names the file and its rebuild.

A stage reads what an earlier stage wrote (``data/prepared/classes.json``, the ``.npy`` splits,
the ``.npz`` explanations, the ``.keras`` models). When such a file is missing, truncated or
garbage, the libraries' own messages name neither the file nor the fix ("Expecting value: line 1
column 1", NumPy's advice to unpickle untrusted data, Keras' "File not found" for a file that
exists). These readers raise :class:`InputFileError` instead, one sentence naming the path, what
is wrong with it and the ``dvc repro`` command that writes it again.

The stage that rebuilds a file is looked up in the ``dvc.yaml`` of the project the file lies in
(the closest folder above it that has one), so the hint follows the pipeline as declared and
needs no table of its own; a file outside every declared output gets a generic hint.

OS errors of the machine (permission denied, a read-only or full disk) are not input defects and
pass through unchanged, for the stage frame to report.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelflip.stage.declarations import read_declarations

# What NumPy and zipfile raise for a truncated or garbage array file (ValueError covers the
# pickle advice, a bad header and "mmap length is greater than file size").
_ARRAY_FILE_ERRORS = (ValueError, EOFError, zipfile.BadZipFile, zlib.error)
# Keras 3 writes these into every .keras zip; without config.json there is no model to build.
_KERAS_CONFIG = "config.json"


class InputFileError(ValueError):
    """A file written by an earlier stage is unusable; the message names it and its rebuild."""


class MissingInputError(InputFileError, FileNotFoundError):
    """A file written by an earlier stage does not exist (also a ``FileNotFoundError``)."""


def read_json_input(path: str | os.PathLike) -> Any:
    """The parsed content of a JSON file an earlier stage wrote.

    Raises:
        MissingInputError: the file does not exist.
        InputFileError: the file is not UTF-8 JSON (empty, truncated, garbage).
    """
    path = _existing_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise _unusable(path, f"is not text (byte {error.start} is not UTF-8)") from error
    except json.JSONDecodeError as error:
        problem = f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        raise _unusable(path, problem) from error


def load_npy_input(path: str | os.PathLike, *, mmap_mode: str | None = None) -> np.ndarray:
    """The array of a ``.npy`` file an earlier stage wrote, never unpickling anything.

    Args:
        path: the ``.npy`` file.
        mmap_mode: as for ``np.load``; ``"r"`` maps the file read-only instead of reading it.

    Raises:
        MissingInputError: the file does not exist.
        InputFileError: the file is not a complete ``.npy`` array (garbage, truncated, an
            object array, or a ``.npz`` archive).
    """
    path = _existing_file(path)
    try:
        array = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except _ARRAY_FILE_ERRORS as error:
        raise _unusable(path, f"is not a complete .npy array ({_array_problem(error)})") from error
    if not isinstance(array, np.ndarray):
        array.close()
        raise _unusable(path, "is a .npz archive where a .npy array was expected")
    return array


def load_npz_input(
    path: str | os.PathLike, *, fields: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` file an earlier stage wrote, read whole and the file closed.

    Every member is decompressed here, so a damaged member fails now, with this file's name,
    rather than later wherever the array is first used.

    Args:
        path: the ``.npz`` file.
        fields: the arrays to read, all of which must be present; None reads every array.

    Raises:
        MissingInputError: the file does not exist.
        InputFileError: the file is not a complete ``.npz`` archive of plain arrays, or lacks
            one of ``fields``.
    """
    path = _existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            if not isinstance(stored, np.lib.npyio.NpzFile):
                raise _unusable(path, "is a .npy array where a .npz archive was expected")
            missing = [name for name in fields or () if name not in stored.files]
            if missing:
                raise _unusable(path, f"lacks the fields {missing} (it holds {stored.files})")
            return {name: stored[name] for name in (stored.files if fields is None else fields)}
    except InputFileError:
        raise
    except _ARRAY_FILE_ERRORS as error:
        problem = f"is not a complete .npz archive ({_array_problem(error)})"
        raise _unusable(path, problem) from error


def check_model_file(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a complete Keras ``.keras`` file before Keras reads it.

    A ``.keras`` file is a zip; Keras reports a truncated one as "File not found". Every
    member's CRC is checked (``ZipFile.testzip``), which reads the file once.

    Returns:
        ``path`` as a Path.

    Raises:
        MissingInputError: the file does not exist.
        InputFileError: the file is not a zip, has a damaged member or holds no Keras model.
    """
    path = _existing_file(path)
    if not zipfile.is_zipfile(path):
        raise _unusable(path, "is not a Keras model file (not a zip; truncated or overwritten)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise _unusable(path, f"is a damaged Keras model file ({error})") from error
    if damaged is not None:
        raise _unusable(path, f"is a damaged Keras model file (member {damaged!r} fails its CRC)")
    if _KERAS_CONFIG not in names:
        raise _unusable(path, f"is a zip without {_KERAS_CONFIG}, so not a Keras model file")
    return path


def rebuild_hint(path: str | os.PathLike) -> str:
    """How to write ``path`` again: ``run `dvc repro <stage>```, the stage whose outs hold it."""
    stage = producing_stage(path)
    if stage is None:
        return "rebuild it with the stage that writes it (`dvc repro`) or restore it (`dvc pull`)"
    return f"run `dvc repro {stage}` to rebuild it"


def producing_stage(path: str | os.PathLike) -> str | None:
    """The ``dvc.yaml`` stage (``validate``, ``attention@se``) whose outs include ``path``.

    The project is the closest folder above ``path`` (relative paths count from the current
    folder, as stages run from the project root) holding a ``dvc.yaml``; None when there is
    none, it cannot be read, or no stage declares an output at or above ``path``.
    """
    absolute = Path(os.path.abspath(path))
    root = next((folder for folder in absolute.parents if (folder / "dvc.yaml").is_file()), None)
    if root is None:
        return None
    try:
        declarations = read_declarations(root)
    except (OSError, ValueError):  # a broken dvc.yaml must not hide the error being reported
        return None
    relative = absolute.relative_to(root)
    for name, declaration in declarations.items():
        for out in declaration.outs:
            out_path = Path(out)
            if relative == out_path or out_path in relative.parents:
                return name
    return None


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise MissingInputError(f"{path} {what}; {rebuild_hint(path)}.")
    return path


def _unusable(path: Path, problem: str) -> InputFileError:
    return InputFileError(f"{path} {problem}; {rebuild_hint(path)}.")


def _array_problem(error: BaseException) -> str:
    """NumPy's reason, minus its advice to unpickle the file or a memory map's jargon."""
    text = str(error)
    if "pickle" in text:
        return "unknown content, not an array header"
    if "mmap length" in text:
        return "shorter than its header says"
    return text.split(" If you trust")[0] or type(error).__name__
