"""The frame every stage script runs in: params, MLflow child run, and clean errors.

A stage script is ``run_stage("train", main, sections=("train",))``. Parameters are checked
before any work; bad input (a bad parameter, unusable data) ends the stage with one line on
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

from pixelflip import tracking
from pixelflip.params import Params, ParamsError, load_params

EXIT_BAD_INPUT = 2


class StageError(ValueError):
    """Unusable input found while a stage runs; the message says what to do."""


def run_stage(stage: str, body: Callable[[Params], None], *, sections: tuple[str, ...],
              log_system_metrics: bool = False) -> None:
    """Load ``params.yaml``, open the MLflow child run of ``stage`` and call ``body(params)``.

    ``sections`` are the params sections the stage reads; they are logged to MLflow (with
    ``seed``) as ``section.key`` parameters. ``log_system_metrics`` samples CPU, memory and GPU
    use into the run while the stage works (the training stages).
    """
    root = tracking.project_root()
    started = time.perf_counter()
    try:
        params = load_params(root / "params.yaml")
        logged = {"seed": params.seed}
        for section in sections:
            logged.update(tracking.flatten(section, params.section(section)))
        with tracking.stage_run(stage, root=root, experiment=params.tracking.experiment,
                                uri=params.tracking.uri, enabled=params.tracking.enabled,
                                params=logged, log_system_metrics=log_system_metrics):
            body(params)
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
