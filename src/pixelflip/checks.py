"""Argument checks every part of the library shares (models, plots, explanations).

A check raises ValueError with one sentence naming the argument, its value and what is
expected. Kept free of TensorFlow and Keras, so that importing it costs nothing.
"""

from __future__ import annotations

import numbers


def check_integer(key: str, value, *, minimum: int) -> int:
    """``value`` as an int; ValueError naming ``key`` unless it is an integer >= ``minimum``.

    Python and NumPy integers pass; booleans, floats (even ``2.0``) and strings do not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{key}={value!r} is invalid; expected an integer >= {minimum}.")
    return int(value)
