"""Opening the MLflow store safely: one migration under a file lock, a quick look at a server.

Two problems this module solves before a stage does any work:

- **Concurrent first runs.** ``dvc queue start -j 2`` on a project without ``mlflow.db`` starts
  two stages that would both create and migrate the SQLite schema, and corrupt it. A SQLite
  store is therefore opened (created, migrated, its experiment and parent run looked up or
  created) under an inter-process lock file beside the database, ``<mlflow.db>.lock``, so
  exactly one process migrates it and get-or-create steps never race.
- **Unreachable servers.** MLflow retries a dead ``http(s)`` server for minutes before it gives
  up with a page of chained tracebacks. :func:`probe_server` asks the server's ``/health``
  endpoint with a timeout of a few seconds first, and :func:`opening_errors` turns any MLflow,
  HTTP or database error while the run is opened into one :class:`TrackingUnavailableError`
  line naming the URI and the ways out. :func:`lower_http_retries` keeps MLflow's own retries
  short for the rest of the stage (see :mod:`pixelflip.tracking.outage`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

#: Seconds the probe of a tracking server waits for an answer.
PROBE_TIMEOUT_S = 5.0
#: Seconds a stage waits for another process to finish opening the same SQLite store.
LOCK_TIMEOUT_S = 300.0
#: MLflow's HTTP settings for a stage process, unless the user set them: a dead server costs a
#: few seconds per call instead of MLflow's default of minutes of retries.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
URI_FROM_ENVIRONMENT = "MLFLOW_TRACKING_URI"
#: MLflow's loggers in a stage process, unless ``MLFLOW_LOGGING_LEVEL`` says otherwise: its INFO
#: lines (creating and migrating tables, starting the system metrics monitor) are no news to
#: someone running a pipeline; warnings and errors still show. Alembic, which migrates the
#: schema, is already at WARNING in MLflow's own logging setup.
MLFLOW_LOGGERS = ("mlflow", "alembic")


class TrackingUnavailableError(ValueError):
    """The MLflow store or server cannot be used; the message names it and the ways out."""


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other stores and in-memory ones."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def ways_out(uri: str, *, from_environment: bool) -> str:
    """What the user can do about a store that does not work, as the end of a sentence."""
    fix = "start the server" if is_http(uri) else "fix the store's path or permissions"
    unset = f", or unset {URI_FROM_ENVIRONMENT}" if from_environment else ""
    return f"{fix}, or set tracking.enabled: false in params.yaml{unset}"


def describe_error(error: BaseException) -> str:
    """A short reason for a connection or store error, without the chain of wrapped errors."""
    text = " ".join(str(error).split())
    for pattern, reason in (
        (r"Connection refused", "connection refused"),
        (r"Name or service not known|nodename nor servname|Temporary failure in name "
         r"resolution|NameResolutionError|getaddrinfo failed", "unknown host"),
        (r"timed out|Timeout", "no answer in time"),
        (r"unable to open database file", "unable to open the database file"),
        (r"readonly database|read-only", "the database is read-only"),
        (r"Is a directory|IsADirectory", "it is a folder"),
        (r"Permission denied", "permission denied"),
    ):
        if re.search(pattern, text):
            return reason
    return text if len(text) <= 200 else text[:197] + "..."


def tracking_errors() -> tuple[type[BaseException], ...]:
    """The exception types a failing store or server raises through MLflow."""
    import sqlite3

    import requests
    from mlflow.exceptions import MlflowException

    errors: tuple[type[BaseException], ...] = (MlflowException, requests.RequestException,
                                                OSError, sqlite3.Error)
    with contextlib.suppress(ImportError):
        import sqlalchemy.exc

        errors += (sqlalchemy.exc.SQLAlchemyError,)
    return errors


def quiet_mlflow_loggers() -> None:
    """Set :data:`MLFLOW_LOGGERS` to WARNING in this process, unless the user chose a level
    with ``MLFLOW_LOGGING_LEVEL`` (which MLflow applies when it is imported)."""
    import logging

    import mlflow  # noqa: F401  (MLflow sets its loggers up on import; this must come after)

    if os.environ.get("MLFLOW_LOGGING_LEVEL"):
        return
    for name in MLFLOW_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.WARNING))


def lower_http_retries(uri: str) -> None:
    """Make MLflow give up on a dead ``http(s)`` server within seconds, in this process.

    Settings already in the environment win. MLflow reads them on every request, so this must
    run before the stage's first request and stays for the process (a stage is one process).
    """
    if is_http(uri):
        for name, value in HTTP_SETTINGS.items():
            os.environ.setdefault(name, value)


def probe_server(uri: str, *, from_environment: bool, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Check that an ``http(s)`` URI answers like an MLflow server; other URIs pass.

    Raises
    ------
    TrackingUnavailableError
        If the host is unknown, refuses the connection, does not answer within ``timeout``
        seconds, or answers ``GET /health`` with anything but HTTP 200 (a server that is not
        MLflow's, or one that is failing).
    """
    if not is_http(uri):
        return
    import requests
    from mlflow.environment_variables import (
        MLFLOW_TRACKING_INSECURE_TLS,
        MLFLOW_TRACKING_SERVER_CERT_PATH,
    )

    # The same TLS settings MLflow's own requests use.
    verify = (False if MLFLOW_TRACKING_INSECURE_TLS.get()
              else MLFLOW_TRACKING_SERVER_CERT_PATH.get() or True)
    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout, verify=verify)
    except requests.RequestException as error:
        reason = describe_error(error)
        if isinstance(error, requests.Timeout):
            reason = f"no answer within {timeout:g} s"
        raise unavailable(uri, reason, from_environment=from_environment) from None
    if response.status_code != 200:
        raise unavailable(uri, f"GET /health answered HTTP {response.status_code}, so it is "
                          "not a working MLflow tracking server", from_environment=from_environment)


def unavailable(uri: str, reason: str, *, from_environment: bool) -> TrackingUnavailableError:
    """The one-line error for a store that cannot be opened."""
    return TrackingUnavailableError(
        f"MLflow tracking store {uri} cannot be used ({reason}): "
        f"{ways_out(uri, from_environment=from_environment)}.")


@contextlib.contextmanager
def opening_errors(uri: str, *, from_environment: bool) -> Iterator[None]:
    """Turn any error of the store while a run is opened into one ``TrackingUnavailableError``."""
    try:
        yield
    except TrackingUnavailableError:
        raise
    except tracking_errors() as error:
        raise unavailable(uri, describe_error(error), from_environment=from_environment) from error


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold the inter-process lock of a SQLite store (``<database>.lock``); others: no lock.

    Whoever takes the lock first creates and migrates the database; the others wait, then find
    it ready. A server serializes its own writes, so ``http(s)`` stores need no lock here.
    """
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    import filelock

    database.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(f"{database}.lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise TrackingUnavailableError(
            f"Another process has held the lock {lock.lock_file} of MLflow store {uri} for "
            f"{LOCK_TIMEOUT_S:g} s; stop stale stage processes, or delete the lock file if "
            "none is running, then rerun.") from None
    try:
        check_sqlite_database(database)
        yield
    finally:
        lock.release()


def check_sqlite_database(database: Path) -> None:
    """Open ``database`` for writing once, with SQLite itself, failing at once if it cannot.

    MLflow retries a database it cannot open for about 100 s before it raises; SQLite answers
    immediately. Creates an empty database file where none is, as MLflow would.

    Raises
    ------
    sqlite3.Error
        If the file cannot be opened or written (a folder, a read-only file or folder).
    """
    import sqlite3

    connection = sqlite3.connect(database, timeout=LOCK_TIMEOUT_S)
    try:
        # Takes the write lock (waiting for other writers) without changing anything.
        connection.execute("BEGIN IMMEDIATE")
        connection.rollback()
    finally:
        connection.close()
