"""Profiles: versioned files of the params that differ from ``params.yaml`` for one use.

``profiles/cats-vs-dogs.yaml`` holds the photo settings. A profile has params.yaml's layout but
only the keys it changes; it is checked by the same typed loader as params.yaml, merged over
it, so a typo stops before DVC runs anything. It reaches DVC as ``-S key=value`` flags of
``dvc exp run``: the experiment's params.yaml then holds exactly the values the run used, which
``dvc exp show`` and MLflow display, and params.yaml stays the one file the stages read.

From the shell::

    python -m pixelflip.config.profiles cats-vs-dogs              # prints the -S flags
    python -m pixelflip.config.profiles cats-vs-dogs -S train.epochs=5 --run -n photos
                                                                  # runs dvc exp run with them

(DVC's own Hydra composition was the other way; it regenerates params.yaml from ``conf/`` on
every ``dvc exp run``, so params.yaml would stop being the file people edit.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import Params, load_params
from pixelflip.config.typed import merge_overrides
from pixelflip.config.yaml_file import parse_yaml, read_yaml_mapping

PROFILES_DIR = Path("profiles")
_PLAIN_TEXT = re.compile(r"^[\w./:@+-]+$")
_UNPARSED = object()


def profile_path(profile: str, root: str | os.PathLike = ".") -> Path:
    """The file of ``profile``: a path to a YAML file, or a name in ``<root>/profiles/``."""
    path = Path(profile)
    if path.suffix in (".yaml", ".yml"):
        return path
    return Path(root) / PROFILES_DIR / f"{profile}.yaml"


def read_profile(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping a profile file holds; ParamsError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        folder = path.parent
        known = sorted(item.stem for item in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ParamsError(f"profile {path} not found; profiles in {folder}: "
                          f"{', '.join(known) or 'none'}")
    profile = read_yaml_mapping(path, what="profile")
    if not profile:
        raise ParamsError(f"profile {path} must be a non-empty mapping of params sections")
    return profile


def parse_overrides(assignments: Sequence[str]) -> dict[str, Any]:
    """``["train.epochs=5"]`` as the nested mapping ``{"train": {"epochs": 5}}`` (values read
    as YAML, as ``dvc exp run -S`` reads them)."""
    nested: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator or not key:
            raise ParamsError(f"-S {assignment!r} is not key=value, e.g. -S train.epochs=5")
        *sections, name = key.split(".")
        target = nested
        for section in sections:
            target = target.setdefault(section, {})
        try:
            target[name] = parse_yaml(text)
        except ParamsError as error:
            raise ParamsError(f"-S {assignment!r}: the value {error}") from None
    return nested


def check_profile(profile: Mapping[str, Any], params_file: str | os.PathLike) -> Params:
    """The params ``profile`` gives over ``params_file``, fully checked; ParamsError if bad."""
    return load_params(params_file, overrides=profile)


def set_param_flags(profile: Mapping[str, Any]) -> list[str]:
    """``["-S", "data.image_size=128", ...]``: one ``dvc exp run`` flag per profile value.

    Sections are followed down to their knobs; a knob whose value is a list or mapping is set
    whole (``train.conv_filters=[32,64]``), written so that DVC reads back the same value.
    """
    flags = []
    for key, value in knob_values(profile):
        text = _as_flag_value(key, value)
        flags += ["-S", f"{key}={text}"]
    return flags


def knob_values(values: Mapping[str, Any], section: type = Params, prefix: str = ""):
    """``(dotted key, value)`` of every knob in ``values`` (params.yaml's layout), sections
    followed down by the params dataclasses, a mapping knob (``data.classes``) kept whole."""
    hints = typing.get_type_hints(section)
    for name, value in values.items():
        kind = hints.get(name)
        if kind is not None and dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
            yield from knob_values(value, kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _as_flag_value(key: str, value: Any) -> str:
    """``value`` in the override grammar ``dvc exp run -S`` parses (Hydra's), checked by
    parsing it back with that grammar."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if isinstance(value, str) and _PLAIN_TEXT.match(value):
        text = value
    else:
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        text = text.removesuffix("\n...").replace(", ", ",").replace(": ", ":")
    try:
        parsed = OverridesParser.create().parse_override(f"{key}={text}").value()
    except Exception:  # Hydra raises several error types for text it cannot parse
        parsed = _UNPARSED
    if parsed != value or type(parsed) is not type(value) or " " in text:
        raise ParamsError(f"{key} = {value!r} cannot be passed as a -S flag; set it in "
                          "params.yaml instead")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pixelflip.config.profiles",
        description="Check a params profile and print (or run) the `dvc exp run` that uses it.")
    parser.add_argument("profile", help="a name in profiles/ (cats-vs-dogs) or a .yaml path")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a further value, applied over the profile")
    parser.add_argument("--params", default="params.yaml", help="the params file it overrides")
    parser.add_argument("--run", nargs=argparse.REMAINDER, metavar="DVC_ARGS",
                        help="run `dvc exp run` with the flags and these further arguments")
    arguments = parser.parse_args(argv)
    try:
        path = profile_path(arguments.profile)
        profile = merge_overrides(read_profile(path), parse_overrides(arguments.overrides))
        check_profile(profile, arguments.params)
        flags = set_param_flags(profile)
    except ParamsError as error:
        print(f"[profiles] error: {arguments.profile}: {error}", file=sys.stderr)
        return 2
    if arguments.run is None:
        # Unquoted: the values hold no spaces (checked), so `$(...)` splits them into flags.
        print(" ".join(flags))
        return 0
    command = ["dvc", "exp", "run", *flags, *arguments.run]
    print(f"[profiles] {path} checked; running: {shlex.join(command)}", flush=True)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
