"""The frame every stage script runs in: params, MLflow child run, and clean errors.

A stage script is ``run_stage("train", main)``: the params ``main`` may read, and those logged to
MLflow, are the ones the stage declares in ``dvc.yaml``. Parameters are checked before any work; bad input (a bad parameter, unusable data) ends the stage with one line on
stderr naming the problem and exit status 2, never a traceback. ``PIXELFLIP_DEBUG=1`` shows the
traceback for engineers chasing a bug.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pixelflip.config.declared import DeclaredParams, UndeclaredParamError, declared_values
from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import load_params
from pixelflip.stage.declarations import stage_declaration
from pixelflip.tracking.runs import project_root, stage_run

EXIT_BAD_INPUT = 2


class StageError(ValueError):
    """Unusable input found while a stage runs; the message says what to do."""


def run_stage(stage: str, body: Callable[[DeclaredParams], None], *,
              log_system_metrics: bool = False) -> None:
    """Load ``params.yaml``, open the MLflow child run of ``stage`` and call ``body(params)``.

    ``stage`` is the stage's name in ``dvc.yaml`` (``train``, ``attention@se``). ``body`` gets
    the params as a :class:`~pixelflip.config.declared.DeclaredParams` view: it can read the keys
    the stage's ``params:`` entry in dvc.yaml declares (and ``tracking``), and reading any other
    raises, so DVC's record of what the stage depends on is complete. The MLflow run logs
    exactly those declared params, flattened (``train.epochs``). ``log_system_metrics`` samples
    CPU, memory and GPU use into the run while the stage works (the training stages).
    """
    root = project_root()
    started = time.perf_counter()
    try:
        params = load_params(root / "params.yaml")
        declared = stage_declaration(stage, root).params
        logged = declared_values(params, declared)
        with stage_run(stage, root=root, experiment=params.tracking.experiment,
                       uri=params.tracking.uri, enabled=params.tracking.enabled,
                       params=logged, log_system_metrics=log_system_metrics):
            body(DeclaredParams(params, declared, stage=stage))
    except UndeclaredParamError as error:
        _fail(stage, f"dvc.yaml: {error}")
    except ParamsError as error:
        _fail(stage, f"params.yaml: {error}")
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("PIXELFLIP_DEBUG"):
            traceback.print_exc()
        _fail(stage, str(error) + _debug_hint())
    print(f"[{stage}] done in {time.perf_counter() - started:.1f} s", flush=True)


def _fail(stage: str, message: str) -> None:
    print(f"[{stage}] error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def _debug_hint() -> str:
    return "" if os.environ.get("PIXELFLIP_DEBUG") else " (PIXELFLIP_DEBUG=1 shows the traceback)"


def stage_argument(position: int, name: str) -> str:
    """A positional argument of a foreach stage (``attention.py se``), with a clear error."""
    if len(sys.argv) <= position:
        print(f"usage: {Path(sys.argv[0]).name} <{name}>", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    return sys.argv[position]
