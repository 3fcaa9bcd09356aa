"""Pipeline folders: the project's pipeline run with another ``params.yaml``, results committed.

``pipelines/cats-vs-dogs/`` holds a second ``dvc.yaml`` and ``params.yaml`` with their own
``dvc.lock``, metrics and plots, committed beside the digits default. DVC finds every
``dvc.yaml`` of the repository, so ``dvc metrics show``, ``dvc exp show`` and ``dvc plots diff``
list both pipelines without anyone retraining; ``dvc repro`` (which reads the ``dvc.yaml`` of the
current folder) runs one of them: ``cd pipelines/cats-vs-dogs && dvc repro``.

The folder's ``dvc.yaml`` is derived from the root one, never edited by hand: the same stages,
with the code paths (``stages/``, ``src/``) pointing back to the root, and every data, model,
metrics and plots path relative to the folder, where DVC runs the commands. Its ``params.yaml``
is the root file with a profile's values written into it, comments kept; once written it is the
folder's own file (``dvc exp run -S`` edits it), so it is only written when absent or asked to.

From the shell::

    python -m pixelflip.stage.pipeline_folder pipelines/cats-vs-dogs --profile cats-vs-dogs \\
        -S data.source=folder -S data.path=../../../shared/data/petimages-10k
    python -m pixelflip.stage.pipeline_folder pipelines/cats-vs-dogs --check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pixelflip.config.knobs import ParamsError
from pixelflip.config.profiles import knob_values, parse_overrides, profile_path, read_profile
from pixelflip.config.typed import merge_overrides
from pixelflip.config.yaml_file import parse_yaml

PIPELINE_FILE = "dvc.yaml"
PARAMS_FILE = "params.yaml"
# The paths of dvc.yaml that name the project's code, not a stage's data: they point back to
# the root from a pipeline folder.
_CODE_PATH = re.compile(r"^(?P<lead>\s*(?:- |cmd: python ))(?P<path>(?:stages|src)/)")
_KNOB_LINE = re.compile(r"^(?P<indent> *)(?P<key>[\w-]+):(?P<value>[^#\n]*?)(?P<rest>\s*(?:#.*)?)$")


def _back_to_root(folder: Path) -> str:
    if folder.is_absolute() or ".." in folder.parts or not folder.parts:
        raise ValueError(f"pipeline folder {str(folder)!r} must be a relative path below the "
                         "project root, such as pipelines/cats-vs-dogs")
    return "../" * len(folder.parts)


def derived_pipeline(root_pipeline: str, folder: Path) -> str:
    """The ``dvc.yaml`` text of the pipeline folder ``folder`` (relative to the project root).

    ``root_pipeline`` is the text of the root ``dvc.yaml``; every line is kept but the code
    paths, which gain one ``../`` per level of ``folder``.
    """
    back = _back_to_root(folder)
    header = (f"# Generated from {back}{PIPELINE_FILE} by\n#   python -m pixelflip.stage."
              f"pipeline_folder {folder.as_posix()}\n# (do not edit): the root pipeline's "
              "stages, run from this folder. Code paths point back to\n# the root; data, "
              "models, metrics and plots land here.\n")
    lines = [_CODE_PATH.sub(lambda match: f"{match['lead']}{back}{match['path']}", line)
             for line in root_pipeline.splitlines(keepends=True)]
    return header + "".join(lines)


def params_with_profile(root_params: str, values: Mapping[str, Any]) -> str:
    """``root_params`` (the text of params.yaml) with the knobs of ``values`` replaced.

    ``values`` is a nested mapping in params.yaml's layout; each knob's line keeps its
    indentation and comment, its value written in YAML flow style. The result is checked: it
    must read back as the root file merged with ``values``.
    """
    flat = dict(knob_values(values))
    lines = []
    path: list[tuple[int, str]] = []
    replaced = set()
    for line in root_params.splitlines(keepends=True):
        match = _KNOB_LINE.match(line.rstrip("\n"))
        if match is None:
            lines.append(line)
            continue
        indent = len(match["indent"])
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, match["key"]))
        key = ".".join(name for _, name in path)
        if key in flat:
            knob = f"{match['indent']}{match['key']}: {_flow(flat[key])}"
            comment = match["rest"].strip()
            if comment:
                # The comment stays in its column when the new value leaves room for it.
                column = line.index(comment)
                knob = f"{knob.ljust(column - 1)} {comment}"
            line = knob + "\n"
            replaced.add(key)
        lines.append(line)
    missing = sorted(set(flat) - replaced)
    if missing:
        raise ParamsError(f"{', '.join(missing)}: not a knob of the root {PARAMS_FILE}")
    text = "".join(lines)
    # Read back as the stages and DVC read it (YAML 1.2: 1e-3 is a number).
    expected = merge_overrides(parse_yaml(root_params), values)
    if parse_yaml(text) != expected:
        raise ParamsError("the profile's values could not be written into params.yaml line by "
                          "line (a knob spans several lines there); set them by hand")
    return text


def _flow(value: Any) -> str:
    """``value`` as one line of YAML that reads back as ``value`` the way the stages read it."""
    if isinstance(value, str) and re.fullmatch(r"[\w./-]+", value) and parse_yaml(value) == value:
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix(
        "\n...").removesuffix("...").strip()
    if isinstance(value, str) and parse_yaml(text) != value:
        # PyYAML (YAML 1.1) leaves 1e-3 unquoted, which YAML 1.2 reads as a number.
        text = json.dumps(value)
    return text


def stale_pipeline(root: Path, folder: Path) -> str | None:
    """Why ``<root>/<folder>/dvc.yaml`` differs from the one derived now; None when it does not."""
    target = root / folder / PIPELINE_FILE
    expected = derived_pipeline((root / PIPELINE_FILE).read_text(), folder)
    if not target.is_file():
        return f"{target} is missing"
    if target.read_text() != expected:
        return (f"{target} is not the one derived from {root / PIPELINE_FILE}: regenerate it "
                f"with python -m pixelflip.stage.pipeline_folder {folder.as_posix()}")
    return None


def write_pipeline_folder(root: Path, folder: Path, *, profile: Mapping[str, Any] | None,
                          write_params: bool, origin: str = "") -> list[Path]:
    """Write the folder's ``dvc.yaml`` (always) and ``params.yaml`` (when absent or asked to).

    ``profile`` holds the values that differ from the root params.yaml (None: none); ``origin``,
    the command that wrote it, goes into the params file's first comment. Returns the files
    written.
    """
    # Derived first: it refuses a folder outside the project before anything is created.
    derived = derived_pipeline((root / PIPELINE_FILE).read_text(), folder)
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    written = []
    pipeline = target / PIPELINE_FILE
    pipeline.write_text(derived)
    written.append(pipeline)
    params = target / PARAMS_FILE
    if write_params or not params.exists():
        header = (f"# This pipeline's own params: {_back_to_root(folder)}{PARAMS_FILE} with other "
                  "values written in by\n#   " + (origin or "pixelflip.stage.pipeline_folder")
                  .replace(" -S", " \\\n#     -S") + "\n")
        params.write_text(header + params_with_profile((root / PARAMS_FILE).read_text(),
                                                       profile or {}))
        written.append(params)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pixelflip.stage.pipeline_folder",
        description="Write (or check) a pipeline folder: the root dvc.yaml run with its own "
                    "params.yaml.")
    parser.add_argument("folder", help="relative to the project root, e.g. pipelines/cats-vs-dogs")
    parser.add_argument("--profile", help="a name in profiles/ or a .yaml path: its values go "
                                          "into the folder's params.yaml")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a further value, applied over the profile")
    parser.add_argument("--params", action="store_true",
                        help="rewrite the folder's params.yaml even if it exists")
    parser.add_argument("--check", action="store_true",
                        help="only check that the folder's dvc.yaml is the derived one")
    arguments = parser.parse_args(argv)
    root, folder = Path.cwd(), Path(arguments.folder)
    try:
        if arguments.check:
            problem = stale_pipeline(root, folder)
            if problem:
                print(f"[pipeline_folder] {problem}", file=sys.stderr)
                return 1
            print(f"[pipeline_folder] {folder / PIPELINE_FILE} is up to date")
            return 0
        profile = read_profile(profile_path(arguments.profile)) if arguments.profile else {}
        profile = merge_overrides(profile, parse_overrides(arguments.overrides))
        origin = "python -m pixelflip.stage.pipeline_folder " + shlex.join(
            argv if argv is not None else sys.argv[1:])
        written = write_pipeline_folder(root, folder, profile=profile,
                                        write_params=arguments.params, origin=origin)
    except (ParamsError, ValueError, OSError) as error:
        print(f"[pipeline_folder] error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"[pipeline_folder] wrote {os.path.relpath(path, root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
