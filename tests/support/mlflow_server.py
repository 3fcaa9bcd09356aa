"""A real ``mlflow server`` on a free local port, started as a subprocess, for the outage tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

#: Seconds an ``mlflow server`` gets to answer ``/health`` after it was started.
START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """``mlflow server`` with a SQLite backend under ``folder``; :meth:`kill` stops it at once.

    A subclass starts another command that ends up serving MLflow on :attr:`port`
    (:meth:`command`, run in :attr:`cwd` with :attr:`env`); its output goes to ``server.log``.
    """

    cwd: Path | None = None
    env: dict[str, str] | None = None

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        mlflow = Path(sys.executable).with_name("mlflow")
        return [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1", "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
                "--default-artifact-root", (self.folder / "artifacts").as_uri()]

    def start(self) -> MlflowServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            self.command(), cwd=self.cwd, env=self.env,
            stdout=open(self.folder / "server.log", "wb"), stderr=subprocess.STDOUT,
            # Its own process group: kill() ends the server and the workers it forks.
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log()[-2000:]}")
            try:
                if requests.get(f"{self.uri}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"mlflow server did not answer within {START_TIMEOUT_S:g} s")

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server's process group and wait for it: the port refuses from now on."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.kill()
