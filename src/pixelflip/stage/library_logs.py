"""What the libraries a stage runs may print: their warnings and errors, not their chatter.

A stage's output is its own ``[stage] ...`` lines, training's one line per epoch, and whatever
warning or error a library has for the user. Left alone, TensorFlow, Keras and MLflow add about
as many lines again to every ``dvc repro``:

- TensorFlow's C++ log. While ``import tensorflow`` loads its libraries it prints abseil's
  "All log messages before absl::InitializeLog() is called are written to STDERR" and INFO lines
  (``port.cc] oneDNN custom operations are on``, ``cudart_stub.cc] Could not find cuda
  drivers``), before TensorFlow has read ``TF_CPP_MIN_LOG_LEVEL``, so no setting hides them;
  then ERROR lines the setting does hide: ``failed call to cuInit`` on a machine without a GPU,
  and ``NodeDef mentions attribute use_unbounded_threadpool`` each time op determinism rewrites
  a parallel tf.data map into a sequential one (TensorFlow copies an attribute the sequential op
  lacks). The pipeline of :mod:`pixelflip.data.loaders` is rewritten so in every stage: its
  per-pass order is a stateful op, and under op determinism tf.data then runs every parallel
  map of the pipeline sequentially and turns its prefetching off.
- MLflow's INFO log (creating the store, system metrics), its "View run ... at: http://..." lines
  (printed to stdout for a tracking server, not logged) and its "Successfully registered model",
  "Registered model ... already exists" and "Created version" notices (printed, not logged; the
  stage prints the version itself).
- Keras progress bars of the ``predict`` MLflow calls to check that a logged model serves its
  input example.

:func:`quiet_libraries` (run when :mod:`pixelflip` is imported, so before any of its modules
imports TensorFlow or MLflow, which read their settings once) makes TensorFlow's C++ log start
at ``TF_CPP_MIN_LOG_LEVEL=3`` (fatal only) from its first line, MLflow log at WARNING, and keeps
MLflow's run links off stdout. Each is a default: ``TF_CPP_MIN_LOG_LEVEL=0`` shows TensorFlow's
whole C++ log again, ``MLFLOW_LOGGING_LEVEL=INFO`` MLflow's INFO lines,
``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=false`` its run links. Kept free of TensorFlow and
MLflow, like :mod:`pixelflip.stage.console`.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: Environment defaults, read once by TensorFlow and MLflow when they are imported.
LIBRARY_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
# An abseil/TensorFlow C++ log line: severity letter, date, time, thread, file:line].
_CPP_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITIES = "IWEF"
# What MLflow's register_model prints with print(), which no log level reaches.
_REGISTRY_NOTICE = re.compile(r"^(Successfully registered model '.*'\.|Registered model '.*' "
                              r"already exists\. Creating a new version of this model\.\.\.|"
                              r"Created version '.*' of model '.*'\.)$")


def quiet_libraries() -> None:
    """Set :data:`LIBRARY_DEFAULTS` where the user has not, and filter TensorFlow's start-up log.

    Until TensorFlow is imported, a finder on ``sys.meta_path`` waits for ``import tensorflow``
    and drops, from what that import writes to stderr, the C++ log lines below
    ``TF_CPP_MIN_LOG_LEVEL`` (every other line is written as it came); ``TF_CPP_MIN_LOG_LEVEL=0``
    leaves the import alone. The import's output waits in a temporary file until the import
    ends, so a crash inside it would lose that output: chase one with the level at 0.
    """
    for name, value in LIBRARY_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if "tensorflow" not in sys.modules and _min_log_level() > 0 and not any(
            isinstance(finder, _FilteredTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FilteredTensorFlowImport())


def is_hidden_cpp_log_line(line: str, min_log_level: int) -> bool:
    """Whether ``line`` is a C++ log line ``TF_CPP_MIN_LOG_LEVEL=min_log_level`` hides.

    The levels are TensorFlow's: 0 shows every line, 1 hides INFO, 2 also WARNING, 3 also
    ERROR; FATAL lines always show. Abseil's note that the log goes to stderr hides from 1 on.
    """
    if line.startswith(_ABSL_PREAMBLE):
        return min_log_level > 0
    match = _CPP_LOG_LINE.match(line)
    return bool(match) and _SEVERITIES.index(match.group(1)) < min(min_log_level, 3)


@contextlib.contextmanager
def without_progress_bars() -> Iterator[None]:
    """Inside the block, Keras ``fit``/``predict`` calls print no progress bars (they go to
    abseil's INFO log, which shows nothing unless configured), for calls made by code that
    passes no ``verbose`` (MLflow checking a model it logged). Keras keeps the setting per
    thread; the previous one comes back when the block ends."""
    import keras

    interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        if interactive:
            keras.config.enable_interactive_logging()


@contextlib.contextmanager
def without_registry_notices() -> Iterator[None]:
    """Inside the block, MLflow's notices on registering a model version ("Successfully
    registered model", "Registered model ... already exists", "Created version") are dropped; whatever else goes to ``sys.stderr`` in it (MLflow's warnings among
    them) is written there when the block ends, in order, exception or not."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        kept = [line for line in captured.getvalue().splitlines(keepends=True)
                if not _REGISTRY_NOTICE.match(line.rstrip("\n"))]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0  # TensorFlow, too, shows everything for a value that is not a number


class _FilteredTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, with its module's execution wrapped in :func:`_filtered_fd2`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            execute = spec.loader.exec_module

            def exec_module(module):
                with _filtered_fd2(_min_log_level()):
                    execute(module)

            # On this loader only (one per module found), so the module keeps its own loader.
            spec.loader.exec_module = exec_module
        return spec


@contextlib.contextmanager
def _filtered_fd2(min_log_level: int) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file inside the block (the C++ log bypasses
    ``sys.stderr``), then write back every line :func:`is_hidden_cpp_log_line` keeps."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(True)
                    if not is_hidden_cpp_log_line(line, min_log_level)]
            _write_fd2("".join(kept).encode())


def _write_fd2(data: bytes) -> None:
    while data:
        data = data[os.write(2, data):]
