"""What ``dvc.yaml`` declares for each stage: its command, params, deps and outs.

The stage frame reads it so that a stage logs to MLflow exactly the params DVC tracks for it,
and refuses to read a params key that DVC would not rerun it for; the tests read it to check that
every library module a stage runs is among its deps. ``foreach`` stages are expanded the way DVC
expands them (``attention@se`` with ``${item}`` = ``se``), taking the list from ``params.yaml``.

Only the subset of DVC's syntax this project uses is understood: ``foreach`` over a list written
inline or as ``${key}`` of ``params.yaml``, and ``${item}`` inside strings. Anything else raises
ValueError rather than being misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class StageDeclaration:
    """One stage of ``dvc.yaml``, ``foreach`` expanded.

    ``params`` are dotted keys as declared (``seed``, ``train``, ``attention.se``): a key covers
    everything below it; ``all_params`` is True for a stage that declares the whole of
    params.yaml (``- params.yaml:``, the check stage). ``deps`` and ``outs`` are paths relative to the project root; ``outs``
    includes the stage's metrics and plots files.
    """

    name: str
    command: str
    params: tuple[str, ...]
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    all_params: bool = False


def read_declarations(root: str | Path) -> dict[str, StageDeclaration]:
    """Every stage of ``<root>/dvc.yaml`` by name, ``foreach`` stages expanded, in file order."""
    root = Path(root)
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    declarations: dict[str, StageDeclaration] = {}
    for name, stage in (pipeline.get("stages") or {}).items():
        if "foreach" in stage:
            for item in _foreach_items(name, stage["foreach"], params or {}):
                expanded = f"{name}@{item}"
                declarations[expanded] = _declaration(expanded, stage["do"], item)
        else:
            declarations[name] = _declaration(name, stage, None)
    return declarations


def stage_declaration(stage: str, root: str | Path) -> StageDeclaration:
    """The declaration of ``stage`` (``train``, ``attention@se``); ValueError if dvc.yaml has none."""
    declarations = read_declarations(root)
    if stage not in declarations:
        raise ValueError(f"dvc.yaml declares no stage '{stage}'; its stages are: "
                         f"{', '.join(declarations)}")
    return declarations[stage]


def _foreach_items(name: str, foreach: Any, params: dict) -> list:
    if isinstance(foreach, str):
        match = _INTERPOLATION.fullmatch(foreach.strip())
        if match is None:
            raise ValueError(f"dvc.yaml: stage '{name}' has foreach {foreach!r}; expected a list "
                             "or '${key}' of params.yaml")
        foreach = _lookup(params, match.group(1), where=f"stage '{name}' foreach")
    if not isinstance(foreach, list):
        raise ValueError(f"dvc.yaml: stage '{name}' loops over {foreach!r}; expected a list")
    return foreach


def _lookup(params: dict, key: str, *, where: str) -> Any:
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"dvc.yaml: {where} names '{key}', which params.yaml lacks")
        value = value[part]
    return value


def _declaration(name: str, stage: dict, item: Any) -> StageDeclaration:
    def text(value: str) -> str:
        def replace(match: re.Match) -> str:
            if match.group(1).strip() != "item" or item is None:
                raise ValueError(f"dvc.yaml: stage '{name}' uses ${{{match.group(1)}}}; only "
                                 "${item} of a foreach stage is understood here")
            return str(item)

        return _INTERPOLATION.sub(replace, value)

    outs = [text(_path_of(entry)) for section in ("outs", "metrics", "plots")
            for entry in stage.get(section) or []]
    entries = stage.get("params") or []
    return StageDeclaration(
        name=name,
        command=text(stage["cmd"]),
        params=tuple(text(_param_key(name, entry)) for entry in entries
                     if entry != _WHOLE_PARAMS_FILE),
        deps=tuple(text(_path_of(entry)) for entry in stage.get("deps") or []),
        outs=tuple(outs),
        all_params=_WHOLE_PARAMS_FILE in entries,
    )


# DVC's spelling of "every key of params.yaml": the file's name with no list of keys.
_WHOLE_PARAMS_FILE = {"params.yaml": None}


def _param_key(stage: str, entry: Any) -> str:
    """A ``params:`` entry: a key of params.yaml (other params files are not used here)."""
    if not isinstance(entry, str):
        raise ValueError(f"dvc.yaml: stage '{stage}' declares params {entry!r}; expected keys "
                         "of params.yaml such as 'train' or 'train.epochs'")
    return entry


def _path_of(entry: Any) -> str:
    """A list entry of deps, outs or params: a plain string, or ``{path: options}``."""
    if isinstance(entry, dict):
        if len(entry) != 1:
            raise ValueError(f"dvc.yaml entry {entry!r} is not one path with its options")
        return str(next(iter(entry)))
    return str(entry)
