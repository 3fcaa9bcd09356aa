"""Small file helpers shared by every stage: atomic writes and JSON."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from pixelflip.stage.inputs import read_json_input


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and move it onto ``path`` when the block succeeds.

    A stage killed half-way must never leave a file that a later stage trusts, so outputs are
    written under a temporary name in the same folder (same filesystem, so the rename is atomic)
    and renamed at the end. Works for files and for directories.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    # Keep the real suffix last: libraries such as Keras and NumPy choose a format by suffix.
    handle, temporary_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(handle)
    temporary = Path(temporary_name)
    temporary.unlink()
    try:
        yield temporary
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(temporary, target)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporaries of ``target`` left by a killed run (SIGKILL and the out-of-memory
    killer skip every ``finally``); DVC runs one stage per output at a time, so no live writer
    owns them."""
    # mkstemp's random part is 8 characters of [a-z0-9_]; matched exactly, so the temporaries
    # of model.v2.keras are never taken for those of model.keras.
    pattern = re.compile(rf"\.{re.escape(target.stem)}\.[a-z0-9_]{{8}}\.tmp{re.escape(target.suffix)}")
    for stale in target.parent.iterdir():
        if pattern.fullmatch(stale.name):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_to_builtin) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Parsed JSON of ``path``; InputFileError names the file and the stage that rebuilds it."""
    return read_json_input(path)


def _to_builtin(value: Any) -> Any:
    # NumPy scalars and arrays sneak into metrics dicts; JSON needs Python builtins.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
