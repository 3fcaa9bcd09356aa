"""The params of a pipeline execution, logged to its parent run, so runs compare in the UI.

Each stage's child run logs the params its ``dvc.yaml`` entry declares; the parent run holds
all of ``params.yaml``, flattened the same way (``train.epochs``, ``attention.modules``), so
the experiment's runs table compares two pipeline executions by their parent rows alone.

MLflow refuses to log a param again with another value. Every stage of one execution reads the
same ``params.yaml``, so each stage logs only the keys the parent does not hold yet: the first
stage logs them all, later ones add keys a newer params file has. Should the file change while
a pipeline runs, the parent keeps the values its first stage saw (each child run still holds
the values its stage used).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: What ends a value cut to MLflow's length limit of a param value.
_CUT_MARK = "..."


def pipeline_params(root: Path) -> dict[str, Any]:
    """Every key of ``<root>/params.yaml``, flattened (``{"train.epochs": 12, ...}``).

    Empty when the folder has no ``params.yaml`` (a library caller's scratch project).

    Raises
    ------
    ParamsError
        If the file is not a valid params file (the stage frame has refused it already).
    """
    from pixelflip.config.declared import declared_values
    from pixelflip.config.params import load_params

    path = Path(root) / "params.yaml"
    if not path.is_file():
        return {}
    params = load_params(path)
    return declared_values(params, [field.name for field in dataclasses.fields(params)])


def loggable_params(params: Mapping[str, Any]) -> dict[str, str]:
    """``params`` as MLflow stores them: text, cut to its limit on a param value's length.

    A cut value ends in ``...``; the same long value is always cut the same way, so logging it
    again is no conflict.
    """
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    text = {key: str(value) for key, value in params.items()}
    return {key: value if len(value) <= MAX_PARAM_VAL_LENGTH
            else value[:MAX_PARAM_VAL_LENGTH - len(_CUT_MARK)] + _CUT_MARK
            for key, value in text.items()}


def log_new_params(client: Any, run_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Log the keys of ``params`` that run ``run_id`` does not hold yet; returns what it logged.

    Keys the run already holds keep their value, whatever ``params`` says now (see the module
    docstring).
    """
    from mlflow.entities import Param

    logged = client.get_run(run_id).data.params
    new = {key: value for key, value in loggable_params(params).items() if key not in logged}
    if new:
        client.log_batch(run_id, params=[Param(key, value) for key, value in new.items()])
    return new
