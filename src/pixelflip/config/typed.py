"""Typed sections from plain YAML: the checks every params key goes through.

:func:`build_section` turns a mapping read from YAML into a frozen dataclass whose fields were
declared with :func:`pixelflip.config.knobs.knob`: an unknown key, a wrong type or an
out-of-range value raises :class:`~pixelflip.config.knobs.ParamsError` with one line naming the
key, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from pixelflip.config.knobs import ParamsError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping of keys to values, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ParamsError(
                f"unknown key '{prefix}{key}'{hint}; allowed keys in {where}: {', '.join(fields)}"
            )
    values = {}
    for name, spec in fields.items():
        if name not in raw:
            continue
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = build_section(kind, raw[name], prefix=f"{prefix}{name}.")
        else:
            values[name] = _check_value(f"{prefix}{name}", raw[name], kind, spec.metadata)
    return cls(**values)


def _check_value(key: str, value: Any, kind: Any, rules: dict) -> Any:
    optional = _is_optional(kind)
    if value is None:
        if optional:
            return None
        raise ParamsError(f"{key} must not be empty; allowed: {_describe(kind, rules)}")
    base = _strip_optional(kind)
    if typing.get_origin(base) is dict:
        if not isinstance(value, dict) or not value:
            raise ParamsError(f"{key} must be a non-empty mapping, got {value!r}; "
                              f"allowed: {_describe(kind, rules)}")
        _, item_kind = typing.get_args(base)
        return {_check_scalar(f"{key} key", name, str, {}): _check_scalar(
                    f"{key}[{name!r}]", item, item_kind, rules) for name, item in value.items()}
    if typing.get_origin(base) is list:
        if not isinstance(value, list) or not value:
            raise ParamsError(f"{key} must be a non-empty list, got {value!r}; "
                              f"allowed: {_describe(kind, rules)}")
        (item_kind,) = typing.get_args(base)
        checked = [_check_scalar(f"{key}[{index}]", item, item_kind, rules)
                   for index, item in enumerate(value)]
        # A module or method listed twice is a mistake; repeated layer widths are not.
        if rules.get("choices") and len(set(checked)) != len(checked):
            raise ParamsError(f"{key} lists a value twice: {value!r}")
        return checked
    return _check_scalar(key, value, base, rules)


def _check_scalar(key: str, value: Any, kind: type, rules: dict) -> Any:
    allowed = _describe(kind, rules)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ParamsError(f"{key} has the wrong type: got {value!r}; allowed: {allowed}")
    # NaN compares false with every bound, so without this a .nan would pass every range
    # check (and switch off the guard the knob sets, such as the zip-bomb limits).
    if kind is float and not math.isfinite(value):
        raise ParamsError(f"{key} = {value!r} is not a finite number; allowed: {allowed}")
    if rules.get("choices") and value not in rules["choices"]:
        raise ParamsError(f"{key} = {value!r} is not allowed; allowed: {allowed}")
    low, high = _bounds(kind, rules)
    if low is not None and (value <= low if rules["exclusive_minimum"] else value < low):
        raise ParamsError(f"{key} = {value!r} is out of range; allowed: {allowed}")
    if high is not None and (value >= high if rules["exclusive_maximum"] else value > high):
        raise ParamsError(f"{key} = {value!r} is out of range; allowed: {allowed}")
    return value


def _describe(kind: Any, rules: dict) -> str:
    """Say in words what a field accepts, for error messages."""
    base = _strip_optional(kind)
    is_list = typing.get_origin(base) is list
    is_dict = typing.get_origin(base) is dict
    item = typing.get_args(base)[-1] if is_list or is_dict else base
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    text = names.get(item, getattr(item, "__name__", str(item)))
    if rules.get("choices"):
        text = "one of " + ", ".join(repr(choice) for choice in rules["choices"])
    bounds = []
    low, high = _bounds(item, rules)
    if low is not None:
        bounds.append(f"{'>' if rules['exclusive_minimum'] else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if rules['exclusive_maximum'] else '<='} {high:g}")
    if bounds:
        text += " " + " and ".join(bounds)
    if is_list:
        text = f"a list of {text}"
    if is_dict:
        text = f"a mapping of names to {text}"
    if _is_optional(kind):
        text += ", or null"
    return text


def _bounds(kind: Any, rules: dict) -> tuple[float | None, float | None]:
    """The range a value must lie in: the knob's own, and for integers never beyond int32,
    since TensorFlow takes counts (epochs, patience, seeds) as 32-bit integers."""
    low, high = rules.get("minimum"), rules.get("maximum")
    if kind is int:
        low = INT32_MIN if low is None else max(low, INT32_MIN)
        high = INT32_MAX if high is None else min(high, INT32_MAX)
    return low, high


def _is_optional(kind: Any) -> bool:
    return _is_union(kind) and type(None) in typing.get_args(kind)


def _strip_optional(kind: Any) -> Any:
    if _is_union(kind):
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return inner
    return kind


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def require_every_knob(cls: type, raw: Any, prefix: str) -> None:
    """Raise ParamsError naming the first field of ``cls`` (nested sections included) that the
    mapping ``raw`` lacks; a non-mapping section is left for :func:`build_section` to judge."""
    if not isinstance(raw, dict):
        return
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        key = f"{prefix}{spec.name}"
        where = f"under {prefix.rstrip('.')}:" if prefix else "at the top level"
        if spec.name not in raw:
            if dataclasses.is_dataclass(hints[spec.name]):
                raise ParamsError(f"section '{key}' is missing; every knob must be in the file, "
                                  "so that DVC records it: restore the section (git diff shows "
                                  "what was removed)")
            default = spec.default_factory() if callable(spec.default_factory) else spec.default
            raise ParamsError(f"'{key}' is missing; every knob must be in the file, so that DVC "
                              f"records it: add '{spec.name}: {_yaml_value(default)}' (the "
                              f"default) {where}")
        if dataclasses.is_dataclass(hints[spec.name]):
            require_every_knob(hints[spec.name], raw[spec.name], prefix=f"{key}.")


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def merge_overrides(raw: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with the values of ``overrides`` put in, nested mappings merged key by key.

    A section ``overrides`` names but ``raw`` lacks is added whole; a mapping in ``overrides``
    that meets a non-mapping in ``raw`` replaces it (the typed checks then judge it).
    """
    merged = dict(raw) if isinstance(raw, dict) else {}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged
