"""The params a stage may read: the keys its ``dvc.yaml`` entry declares, and no others.

DVC reruns a stage when one of its declared params changes, and only then. A stage that read an
undeclared key would go stale silently when that key changed, so the stage frame hands each stage
a :class:`DeclaredParams` view: reading an undeclared key raises :class:`UndeclaredParamError`
naming the key and the line to add to ``dvc.yaml``. :func:`declared_values` gives the values of
exactly the declared keys, which is what a stage logs to MLflow.

The ``tracking`` section says where results are logged, not what is computed, so no stage
declares it (changing the MLflow server must not rerun the pipeline) and every stage may read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pixelflip.config.knobs import ParamsError

#: Sections every stage may read without declaring them (see the module docstring).
UNDECLARED_SECTIONS = ("tracking",)


class UndeclaredParamError(ParamsError):
    """A stage read a params key that its ``dvc.yaml`` entry does not declare."""


class DeclaredParams:
    """A read-only view of ``params`` (a params dataclass) that allows only ``declared`` keys.

    Attributes read through the view follow the params tree: a declared key gives its value (a
    whole section when a section is declared); a section of which only some keys are declared
    gives another view; anything else raises :class:`UndeclaredParamError`. Methods of a section
    (``attention.module(name)``) run against the view, so what they read is checked too.
    """

    def __init__(self, params: Any, declared: Sequence[str], *, stage: str,
                 prefix: str = "") -> None:
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_declared", tuple(declared))
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        params = object.__getattribute__(self, "_params")
        if name.startswith("__"):
            raise AttributeError(name)
        key = f"{self._prefix}{name}"
        fields = {field.name for field in dataclasses.fields(params)}
        if name not in fields:
            method = getattr(type(params), name, None)
            if callable(method):
                return method.__get__(self)
            raise AttributeError(f"params have no key '{key}'")
        value = getattr(params, name)
        if is_declared(key, self._declared):
            return value
        if dataclasses.is_dataclass(value) and any(
                declared.startswith(f"{key}.") for declared in self._declared):
            return DeclaredParams(value, self._declared, stage=self._stage, prefix=f"{key}.")
        raise UndeclaredParamError(
            f"stage '{self._stage}' reads '{key}', which its entry in dvc.yaml does not declare; "
            f"add '{key}' to stages.{self._stage.split('@')[0]}.params in dvc.yaml, so that DVC "
            "reruns the stage when it changes")

    def declared_values(self) -> dict[str, Any]:
        """The value of every declared key, flattened (``{"train.epochs": 12, ...}``): what the
        stage's result depends on among the params, and what its MLflow run logs."""
        return declared_values(object.__getattribute__(self, "_params"), self._declared)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("params are read-only")

    def __repr__(self) -> str:
        return f"DeclaredParams(stage={self._stage!r}, declared={list(self._declared)!r})"


def declared_values(params: Any, declared: Sequence[str]) -> dict[str, Any]:
    """``{"train.epochs": 12, ...}``: the value of every key under a declared one, flattened."""
    values: dict[str, Any] = {}
    for key in declared:
        value: Any = params
        for part in key.split("."):
            if not dataclasses.is_dataclass(value) or part not in {
                    field.name for field in dataclasses.fields(value)}:
                raise ParamsError(f"dvc.yaml declares the param '{key}', which params.yaml "
                                  "does not have; remove it from the stage or fix its name")
            value = getattr(value, part)
        values.update(_flatten(key, value))
    return values


def _flatten(key: str, value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value):
        flat: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            flat.update(_flatten(f"{key}.{field.name}", getattr(value, field.name)))
        return flat
    return {key: value}


def is_declared(key: str, declared: Sequence[str]) -> bool:
    """Whether a stage that declares the params ``declared`` may read ``key`` (dotted): it is
    one of them, lies under one, or is in a section no stage declares."""
    return key.split(".")[0] in UNDECLARED_SECTIONS or any(
        key == entry or key.startswith(f"{entry}.") for entry in declared)
