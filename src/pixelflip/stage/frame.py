"""The frame every stage script runs in: params, MLflow child run, and clean errors.

A stage script is ``run_stage("train", main)``: the params ``main`` may read, and those logged to
MLflow, are the ones the stage declares in ``dvc.yaml``. Parameters are checked before any work;
bad input (a bad parameter, unusable data, a full disk) ends the stage with one line on stderr
naming the problem and exit status 2, never a traceback; Ctrl-C or ``kill`` ends it with one line
and status 128 + the signal number, after the temporary files are removed and the MLflow run is marked. A stage script
refuses to run from another folder than the project root, and answers ``--help``.
``PIXELFLIP_DEBUG=1`` shows the traceback for engineers chasing a bug.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from pixelflip.config.declared import DeclaredParams, UndeclaredParamError, declared_values
from pixelflip.config.knobs import ParamsError
from pixelflip.config.params import load_params
from pixelflip.stage.console import (
    EXIT_BAD_INPUT,
    StageInterrupted,
    answer_help,
    ending_signals,
    environment_problem,
    fail,
    require_project_root,
)
from pixelflip.stage.declarations import stage_declaration
from pixelflip.stage.params_check import params_file
from pixelflip.tracking.runs import project_root, stage_run

__all__ = ["EXIT_BAD_INPUT", "StageError", "run_stage", "stage_argument"]


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
        declared = stage_declaration(stage, root).params
    except ValueError as error:
        fail(stage, str(error))
    # A foreach stage's script answered --help already, in stage_argument.
    answer_help(stage, declared)
    require_project_root(stage)
    try:
        with ending_signals():
            params = load_params(params_file(root))
            logged = declared_values(params, declared)
            with stage_run(stage, root=root, experiment=params.tracking.experiment,
                           uri=params.tracking.uri, enabled=params.tracking.enabled,
                           params=logged, log_system_metrics=log_system_metrics):
                body(DeclaredParams(params, declared, stage=stage))
    except UndeclaredParamError as error:
        fail(stage, f"dvc.yaml: {error}")
    except ParamsError as error:
        fail(stage, str(error))
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("PIXELFLIP_DEBUG"):
            traceback.print_exc()
        fail(stage, str(error) + _debug_hint())
    except OSError as error:
        problem = environment_problem(error)
        if problem is None:
            raise
        fail(stage, problem)
    except (KeyboardInterrupt, StageInterrupted) as interrupt:
        if not isinstance(interrupt, StageInterrupted):
            interrupt = StageInterrupted(signal.SIGINT)  # Ctrl-C, as Python raises it
        print(f"[{stage}] interrupted ({interrupt.signal_name}) after "
              f"{time.perf_counter() - started:.1f} s; `dvc repro` runs it again", file=sys.stderr,
              flush=True)
        raise interrupt from None
    print(f"[{stage}] done in {time.perf_counter() - started:.1f} s", flush=True)


def _debug_hint() -> str:
    return "" if os.environ.get("PIXELFLIP_DEBUG") else " (PIXELFLIP_DEBUG=1 shows the traceback)"


def stage_argument(position: int, name: str) -> str:
    """A positional argument of a foreach stage (``attention.py se``), with a clear error;
    ``--help`` is answered here, before the argument is taken for the item."""
    script = Path(sys.argv[0]).stem
    answer_help(script, None, arguments=f"<{name}>")
    if len(sys.argv) <= position:
        print(f"usage: {Path(sys.argv[0]).name} <{name}>", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    return sys.argv[position]
