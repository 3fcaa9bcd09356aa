"""Reading a params YAML file the way DVC does, and refusing what YAML would silently accept.

PyYAML follows YAML 1.1, which reads ``1e-3`` as a *string* (its floats need a dot), while DVC
reads params files as YAML 1.2, where ``1e-3`` is a number: the loader here adds YAML 1.2's
float syntax, so both read the same value. PyYAML also lets a repeated key silently replace the
first (a duplicated ``train:`` section would reset every knob above it to its default): the
loader refuses it, naming both lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pixelflip.config.knobs import ParamsError

# YAML 1.2 core schema floats: digits with an exponent and no dot (1e-3) are numbers too.
_YAML12_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


class _ParamsLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise ParamsError(
                    f"line {line}: key {key!r} appears twice (first at line {first_lines[key]}); "
                    "YAML would keep only the last one: delete one of them")
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


_ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT,
                                    list("-+0123456789."))
_ParamsLoader.add_constructor("tag:yaml.org,2002:map", _ParamsLoader.construct_mapping)


def parse_yaml(text: str) -> Any:
    """``text`` parsed as a params file; ParamsError (without the file's name) if it is not one.

    Integers stay ``int`` (``12``), ``1e-3`` and ``0.5`` are ``float``, ``.nan``/``.inf`` are
    floats too (the typed checks refuse them).
    """
    try:
        return yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"is not valid YAML{where}: {getattr(error, 'problem', error)}") from None


def read_yaml_mapping(path: str | Path, *, what: str = "") -> dict[str, Any]:
    """The non-empty mapping the YAML file ``path`` holds; ParamsError naming the file if not.

    ``what`` names the file's role at the start of messages (``"profile"``), if given.
    """
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    try:
        raw = parse_yaml(path.read_text())
    except ParamsError as error:
        separator = " " if str(error).startswith("is ") else ", "
        raise ParamsError(f"{label}{separator}{error}") from None
    if raw is None:
        raise ParamsError(f"{label} is empty; restore it (git checkout {path.name}) or write "
                          "its sections back")
    if not isinstance(raw, dict):
        raise ParamsError(f"{label} must be a mapping of sections to values, got "
                          f"{type(raw).__name__} {str(raw)[:60]!r}")
    return raw
