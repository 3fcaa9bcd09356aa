"""Shared fixtures: a fake Kaggle API server and an isolated home, so tests never read real
Kaggle credentials and never reach the internet."""

from __future__ import annotations

import pytest
from support.kaggle_server import TEST_KEY, TEST_USERNAME, KaggleTestServer

_KAGGLE_ENV_VARS = (
    "KAGGLE_USERNAME",
    "KAGGLE_KEY",
    "KAGGLE_API_TOKEN",
    "KAGGLE_API_ENVIRONMENT",
    "KAGGLE_CONFIG_DIR",
    "XDG_CONFIG_HOME",
    "VERBOSE",
    "VERBOSE_OUTPUT",
)


@pytest.fixture
def kaggle_home(tmp_path, monkeypatch):
    """A scratch ``HOME`` with no Kaggle credentials: neither env vars nor files.

    ``KAGGLE_CONFIG_DIR`` points at ``<home>/.kaggle`` (created empty); the developer's own
    ``~/.kaggle`` (kaggle.json, access_token, credentials.json) is never read.
    """
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    for name in _KAGGLE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    return home


@pytest.fixture
def kaggle_credentials(kaggle_home, monkeypatch):
    """``KAGGLE_USERNAME``/``KAGGLE_KEY`` set to what ``kaggle_server`` accepts; returns them."""
    monkeypatch.setenv("KAGGLE_USERNAME", TEST_USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", TEST_KEY)
    return TEST_USERNAME, TEST_KEY


@pytest.fixture
def kaggle_server(kaggle_home, monkeypatch):
    """A running ``KaggleTestServer`` (no datasets yet) that the in-process client talks to."""
    # A developer's proxy must not catch the client's requests to 127.0.0.1.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    with KaggleTestServer() as server:
        yield server
