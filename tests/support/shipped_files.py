"""The project's files as shipped, for tests that must pass whatever `dvc exp run` left behind.

`dvc exp run -S key=value` in the workspace writes the experiment's values into params.yaml (in
DVC's own YAML layout: nulls left blank, lists one item a line, comments moved), rewrites
dvc.lock and every output of the stages it reruns, and leaves the commit it started from as it
was. So a test about the code reads the code's defaults (:func:`default_params_text`), and a test
about a committed file accepts the working copy or the HEAD commit's version of it
(:func:`assert_one_version_passes`): the working copy while someone edits it, the commit after
an experiment.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import Params


def default_params_text() -> str:
    """A complete params.yaml of the code's defaults: every knob of :class:`Params`, in its
    order (the layout ``yaml.safe_dump`` gives the shipped file: no comments, block lists)."""
    return yaml.safe_dump(dataclasses.asdict(Params()), sort_keys=False)


def _head_text(root: Path, relative: str) -> str | None:
    # "./" makes the path relative to root even when root is a folder inside the repository.
    shown = subprocess.run(["git", "show", f"HEAD:./{relative}"], cwd=root, capture_output=True,
                           text=True, check=False)
    return shown.stdout if shown.returncode == 0 else None


def committed_text(root: Path, relative: str) -> str:
    """``relative``'s text in the HEAD commit of the git checkout ``root``; the working copy's
    outside a git checkout (no `dvc exp run` there) or when HEAD has no such file yet."""
    committed = _head_text(root, relative)
    return (root / relative).read_text() if committed is None else committed


def file_versions(root: Path, relative: str) -> dict[str, str]:
    """``{"working copy": text, "HEAD": text}``; HEAD's only where it exists and differs."""
    versions = {"working copy": (root / relative).read_text()}
    committed = _head_text(root, relative)
    if committed is not None and committed != versions["working copy"]:
        versions["HEAD"] = committed
    return versions


def assert_one_version_passes(root: Path, relative: str, folder: Path,
                              check: Callable[[Path], object]) -> None:
    """Pass when ``check(path)`` passes on the working copy of ``<root>/<relative>`` or on its
    HEAD version (written to ``<folder>/HEAD/<file name>``); when neither does, raise one
    AssertionError giving each version's failure.

    ``check`` fails by raising AssertionError or ParamsError, or through ``pytest.raises``.
    """
    failures = []
    for version, text in file_versions(root, relative).items():
        path = root / relative
        if version != "working copy":
            path = folder / version / Path(relative).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        try:
            check(path)
            return
        except (AssertionError, ParamsError, pytest.fail.Exception) as failure:
            failures.append(f"{version}: {failure}")
    raise AssertionError(f"{relative} fails in every version: " + " | ".join(failures))
