"""Argument checks every part of the library shares (models, plots, explanations, data).

A check raises ValueError with one sentence naming the argument, its value and what is
expected. Kept free of TensorFlow and Keras, so that importing it costs nothing.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_integer(key: str, value, *, minimum: int) -> int:
    """``value`` as an int; ValueError naming ``key`` unless it is an integer >= ``minimum``.

    Python and NumPy integers pass; booleans, floats (even ``2.0``) and strings do not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{key}={value!r} is invalid; expected an integer >= {minimum}.")
    return int(value)


def check_non_negative(key: str, value, *, allow_zero: bool) -> None:
    """Raise ValueError, naming the argument ``key``, unless ``value`` is a finite real number
    that is > 0, or >= 0 with ``allow_zero``.

    Python and NumPy integers and floats pass; booleans, NaN, infinities and strings do not.
    """
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not valid or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{key}={value!r} is invalid; expected a finite number {bound}.")


def check_clip_range(clip_min, clip_max) -> None:
    """Raise ValueError unless the pixel range ``[clip_min, clip_max]`` has ``clip_min < clip_max``.

    Both are compared as floats, so anything ``float()`` accepts may be given.
    """
    if not float(clip_min) < float(clip_max):
        raise ValueError(
            f"clip_min={clip_min!r} and clip_max={clip_max!r} are invalid; expected "
            "clip_min < clip_max."
        )


def require_classes(needed, available, *, problem: str, role: str) -> None:
    """Raise ValueError unless every class index in ``needed`` is in ``available``.

    Parameters
    ----------
    needed : int array
        Class indices that must be available; repeats are fine.
    available : iterable of int
        Class indices that are.
    problem, role : str
        Complete the message ``"{problem} classes [..], which {role}; expected one for every
        such class."``, for example ``problem="train_labels has no image of"`` and
        ``role="successful counterfactuals reach"``.
    """
    missing = sorted(set(np.asarray(needed).tolist()) - set(available))
    if missing:
        raise ValueError(
            f"{problem} classes {missing}, which {role}; expected one for every such class."
        )
