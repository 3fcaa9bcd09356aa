"""The building blocks of the typed parameters: the error they raise and the field they declare.

Apart from :mod:`pixelflip.config.params` so that sections living in other modules
(:mod:`pixelflip.config.explanations`) declare their knobs the same way without a circular import.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any


class ParamsError(ValueError):
    """A parameter file that cannot be used; the message names the key and what is allowed."""


def knob(default: Any, *, choices: tuple | None = None, minimum: float | None = None,
         maximum: float | None = None, exclusive_minimum: bool = False,
         exclusive_maximum: bool = False, help: str = "") -> Any:
    """A dataclass field with the constraints that :func:`load_params` checks."""
    metadata = {
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "exclusive_maximum": exclusive_maximum,
        "help": help,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def redefault(settings: type, name: str, default: Any) -> Any:
    """Knob ``name`` of the dataclass ``settings`` with another default, its constraints and help
    kept: for a settings class that derives from another and differs only in defaults."""
    (base,) = [declared for declared in fields(settings) if declared.name == name]
    return field(default=default, metadata=base.metadata)
