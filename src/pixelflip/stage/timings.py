"""Timings apart from results: what a rerun measures anew, and what it must reproduce exactly.

Seconds and milliseconds change from run to run and from machine to machine; accuracies,
validities and distances do not, given the same models. Stages write the first kind under
``timings/`` and the second under ``metrics/``, ``plots/`` and ``summary/``, so a second
``dvc repro -f`` leaves every file but the timings byte for byte as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only a type here: the light stages (check, download) never load pandas
    import pandas as pd

#: The names of every timing a stage writes, as dict keys or table columns.
TIMING_KEYS = frozenset({"training_seconds", "inference_ms_per_image", "mean_seconds", "seconds",
                         "compile_seconds", "s_per_image"})


def split_timings(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(results, timings)`` of a nested mapping: the :data:`TIMING_KEYS` entries apart.

    Both keep the nesting of ``values``; a branch that holds no timing is left out of
    ``timings``, and one that held only timings is left out of ``results``.
    """
    results: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    for key, value in values.items():
        if key in TIMING_KEYS:
            timings[key] = value
        elif isinstance(value, Mapping):
            inner_results, inner_timings = split_timings(value)
            if inner_results or not inner_timings:
                results[key] = inner_results
            if inner_timings:
                timings[key] = inner_timings
        else:
            results[key] = value
    return results, timings


def split_timing_columns(table: pd.DataFrame, keys: Sequence[str]
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(results, timings)`` of a table: ``timings`` holds the ``keys`` columns (which name a
    row, e.g. model, set and method) and the :data:`TIMING_KEYS` columns; ``results`` the rest.
    """
    missing = [key for key in keys if key not in table]
    if missing:
        raise ValueError(f"the table has no columns {missing} to name its rows by; columns: "
                         f"{', '.join(map(str, table.columns))}.")
    timing_columns = [column for column in table.columns if column in TIMING_KEYS]
    return table.drop(columns=timing_columns), table[[*keys, *timing_columns]]
