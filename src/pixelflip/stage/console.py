"""How a stage script meets the shell: where it may run, ``--help``, one-line failures and
progress lines (:func:`progress`).

Every stage ends a failure the user can fix with one line on stderr, ``[stage] error: ...``,
and exit status 2 (:data:`EXIT_BAD_INPUT`); an interrupted stage (Ctrl-C, ``kill``) with one
line and status 128 + the signal's number (130 for Ctrl-C, 143 for ``kill``). Kept free of MLflow and TensorFlow, so that the check stage, which only
reads params.yaml, starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import errno
import numbers
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2
#: Signals whose default ends a process without unwinding it (SIGINT raises KeyboardInterrupt,
#: SIGKILL cannot be caught; see pixelflip.tracking.liveness.end_dead_runs).
TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                            if hasattr(signal, name))
# An OS error the user fixes outside the pipeline: free space, permissions, a read-only mount.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "the disk is full: free space and rerun",
    errno.EDQUOT: "the disk quota is exhausted: free space and rerun",
    errno.EROFS: "the file system is read-only: make it writable and rerun",
    errno.EACCES: "permission denied: make it writable by you (chmod u+w) and rerun",
    errno.EPERM: "operation not permitted: make it writable by you (chmod u+w) and rerun",
}


def fail(stage: str, message: str) -> NoReturn:
    """Print ``[stage] error: message`` on stderr and exit with :data:`EXIT_BAD_INPUT`."""
    print(f"[{stage}] error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def progress(stage: str, **counters: tuple) -> None:
    """Print where a stage's long loop is, ``[stage] model 3/5 se, set 1/2 sampled``, flushed.

    Each keyword is a loop, outermost first: ``(position, total)``, position counted from 1, or
    ``(position, total, label)`` naming the item (the model, the image set). For example
    ``progress("counterfactuals", model=(3, 5, "se"), set=(1, 2, "sampled"))``.

    Raises
    ------
    ValueError
        If no counter is given, or one is not ``(position, total[, label])`` with
        1 <= position <= total.
    """
    if not counters:
        raise ValueError("progress() needs at least one counter, e.g. model=(3, 5).")
    parts = []
    for loop, counter in counters.items():
        if not (isinstance(counter, tuple) and len(counter) in (2, 3)
                and all(isinstance(number, numbers.Integral) and not isinstance(number, bool)
                        for number in counter[:2])
                and 1 <= counter[0] <= counter[1]):
            raise ValueError(f"progress counter {loop}={counter!r} is invalid; expected "
                             "(position, total) or (position, total, label) with integers "
                             "1 <= position <= total.")
        parts.append(" ".join([loop, f"{counter[0]}/{counter[1]}", *map(str, counter[2:])]))
    print(f"[{stage}] {', '.join(parts)}", flush=True)


def environment_problem(error: OSError) -> str | None:
    """One line for an OS error caused by the machine (disk full, read-only), else None."""
    reason = _ENVIRONMENT_ERRNOS.get(error.errno)
    if reason is None:
        return None
    where = f" writing {error.filename}" if error.filename else ""
    return f"{error.strerror or 'OS error'}{where}: {reason}"


class StageInterrupted(SystemExit):
    """A signal stopped the stage; exits with status 128 + the signal number, as the shell
    reports a process the signal killed."""

    def __init__(self, signal_number: int):
        super().__init__(128 + signal_number)
        self.signal_number = signal_number

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name


@contextlib.contextmanager
def ending_signals() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP unwind the stage as an exception.

    Python's default for them ends the process at once, skipping every ``finally``, so the
    runs would stay ``RUNNING``. Where the default is still in place, the block installs a
    handler raising :class:`StageInterrupted`; a handler an enclosing block installed (the
    stage frame's, around a stage's MLflow run's) is kept, since it raises already. SIGINT needs nothing: Python raises
    ``KeyboardInterrupt``. The previous handlers come back when the block ends, and as soon as
    one signal arrived, so that a second signal during the cleanup acts as without the block.
    Only the main thread can install handlers; elsewhere the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in TERMINATING_SIGNALS
                if signal.getsignal(number) == signal.SIG_DFL}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    def interrupt(signal_number: int, frame: Any) -> None:
        restore()
        raise StageInterrupted(signal_number)

    for number in previous:
        signal.signal(number, interrupt)
    try:
        yield
    finally:
        restore()


def stage_script() -> Path | None:
    """The stage script this process runs (``stages/<name>.py`` of a project), if it runs one."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is None:
        return None
    script = Path(main_file).resolve()
    if script.parent.name == "stages" and (script.parent.parent / "dvc.yaml").exists():
        return script
    return None


def require_project_root(stage: str) -> None:
    """Stop unless a stage script runs from a pipeline folder of its project, where its paths point.

    Every path a stage writes is relative to the folder of the ``dvc.yaml`` that runs it: the
    project root, or a pipeline folder below it (``pipelines/cats-vs-dogs``, whose stages run
    ``python ../../stages/<stage>.py``). Run from ``stages/`` it would write ``stages/data/...``,
    outside what DVC tracks.
    """
    script = stage_script()
    if script is None:
        return
    root = script.parent.parent
    here = Path.cwd().resolve()
    if here == root or (root in here.parents and (here / "dvc.yaml").is_file()):
        return
    fail(stage, f"run stage scripts from the project root, where dvc.yaml is: cd {root} && "
                f"python stages/{script.name} (or dvc repro {stage.split('@')[0]}); from "
                f"{Path.cwd()} its outputs would land outside the project")


def help_requested() -> bool:
    """Whether ``-h`` or ``--help`` is among the script's arguments."""
    return bool({"-h", "--help"} & set(sys.argv[1:]))


def answer_help(stage: str, params: Sequence[str] | None, *, arguments: str = "") -> None:
    """Print what the stage does and reads, and exit 0, if ``-h`` or ``--help`` was given.

    ``params`` are the keys dvc.yaml declares for the stage; None for a ``foreach`` stage asked
    before its item is known (its keys depend on the item).
    """
    if not help_requested():
        return
    script = stage_script()
    name = f"stages/{script.name}" if script else sys.argv[0]
    doc = (getattr(sys.modules.get("__main__"), "__doc__", None) or "").strip()
    print(f"usage: python {name}{' ' + arguments if arguments else ''}   "
          f"(or: dvc repro {stage.split('@')[0]})\n")
    if doc:
        print(doc + "\n")
    if params is None:
        read = f"the keys dvc.yaml declares for {stage}@{arguments or '<item>'}"
    else:
        read = f"the keys dvc.yaml declares for it: {', '.join(params)}" if params else "every key"
    print(f"Reads params.yaml ({read}), from the project root.")
    sys.exit(0)
