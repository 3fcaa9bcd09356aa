"""The ``kaggle`` source: the real ``kaggle`` client against a local fake of Kaggle's API."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.kaggle_server import TEST_API_TOKEN, TEST_KEY, TEST_USERNAME

from pixelflip.data.kaggle import KaggleDownloadError
from pixelflip.data.sources import download_source

DATASET = "tester/pets"
WRONG_KEY = "fedcba9876543210fedcba9876543210"
WRONG_TOKEN = "KGAT_0badc0de0badc0de0badc0de0badc0de"
# The keys and tokens, and the HTTP basic-auth header values that would carry a key.
SECRETS = (TEST_KEY, TEST_API_TOKEN, WRONG_KEY, WRONG_TOKEN) + tuple(
    base64.b64encode(f"{TEST_USERNAME}:{key}".encode()).decode() for key in (TEST_KEY, WRONG_KEY)
)


def _image(seed: int, extension: str) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return cv2.imencode(extension, pixels)[1].tobytes()


def _pet_zip(*, padding_bytes: int = 0, seed: int = 0) -> bytes:
    """A small zip laid out like Microsoft PetImages: 2 cats, 3 dogs, and non-image clutter.

    ``padding_bytes`` adds an incompressible file so that a transfer cut half-way has already
    written a chunk (the client writes 1 MiB at a time) that a rerun can resume from.
    """
    members = {
        "PetImages/Cat/0.jpg": _image(seed, ".jpg"),
        "PetImages/Cat/1.png": _image(seed + 1, ".png"),
        "PetImages/Cat/Thumbs.db": b"windows thumbnail cache",
        "PetImages/Dog/0.jpg": _image(seed + 2, ".jpg"),
        "PetImages/Dog/1.jpg": _image(seed + 3, ".jpg"),
        "PetImages/Dog/2.png": _image(seed + 4, ".png"),
        "readme[1].txt": b"Microsoft Research cats and dogs",
    }
    if padding_bytes:
        members["PetImages/padding.bin"] = np.random.default_rng(seed).bytes(padding_bytes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("PetImages/", b"")
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _files_under(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def _assert_no_secrets(capfd, root: Path, *texts: str) -> str:
    """No key or token in ``texts``, the captured output, or any file under ``root`` that a test
    did not write itself (the kaggle.json under the fake home). Returns the captured output."""
    captured = capfd.readouterr()
    output = captured.out + captured.err
    written = [
        path for path in root.rglob("*")
        if path.is_file() and not (path.name == "kaggle.json" and "home" in path.parts)
    ]
    for secret in SECRETS:
        assert all(secret not in text for text in texts)
        assert secret not in output
        for path in written:
            assert secret.encode() not in path.read_bytes(), path
    return output


@pytest.mark.parametrize("redirect", [False, True], ids=["bytes", "redirect"])
def test_download_keeps_the_zip_as_served_and_records_it(
    redirect, kaggle_server, kaggle_credentials, tmp_path, capfd
):
    served = _pet_zip()
    kaggle_server.add_dataset(DATASET, served, version=3)
    kaggle_server.redirect = redirect
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "mnist.zip").write_bytes(b"an archive of an earlier source")

    record = download_source("kaggle", raw, dataset=DATASET)

    assert (raw / "pets.zip").read_bytes() == served
    assert _files_under(raw) == ["pets.zip", "source.json"]
    assert json.loads((raw / "source.json").read_text()) == record
    assert record["source"] == "kaggle" and record["dataset"] == DATASET
    assert record["version"] == 3 and record["archive"] == "pets.zip"
    assert record["bytes"] == len(served)
    assert record["sha256"] == hashlib.sha256(served).hexdigest()
    assert record["class_counts"] == {"Cat": 2, "Dog": 3}
    assert record["num_images"] == 5 and record["num_files"] == 7
    assert record["created_by"].startswith("pixelflip ")
    assert kaggle_server.download_requests == 1
    download = next(r for r in kaggle_server.requests if r.route.endswith("/DownloadDataset"))
    assert download.body["datasetVersionNumber"] == 3  # the bytes are the recorded version
    assert [r.route.startswith("/files/") for r in kaggle_server.requests].count(True) == redirect
    output = _assert_no_secrets(capfd, tmp_path)
    assert f"Downloading Kaggle dataset {DATASET} version 3" in output


def test_an_intact_zip_is_reused_without_asking_kaggle(kaggle_server, kaggle_credentials, tmp_path):
    served = _pet_zip()
    kaggle_server.add_dataset(DATASET, served, version=1)
    raw = tmp_path / "raw"
    first = download_source("kaggle", raw, dataset=DATASET)
    source_json = (raw / "source.json").read_bytes()
    asked_before = len(kaggle_server.requests)
    # A newer version on Kaggle does not replace the recorded one while the zip is intact.
    kaggle_server.add_dataset(DATASET, _pet_zip(seed=10), version=2)
    (raw / "stale.zip").write_bytes(b"left by another source")

    second = download_source("kaggle", raw, dataset=DATASET)

    assert second == first
    assert len(kaggle_server.requests) == asked_before
    assert (raw / "source.json").read_bytes() == source_json
    assert _files_under(raw) == ["pets.zip", "source.json"]

    # Deleting the zip is how to move to Kaggle's current version.
    (raw / "pets.zip").unlink()
    third = download_source("kaggle", raw, dataset=DATASET)
    assert third["version"] == 2 and kaggle_server.download_requests == 2


@pytest.mark.parametrize("damage", ["truncated", "not_a_zip", "other_zip", "no_record"])
def test_a_damaged_or_unverifiable_zip_is_downloaded_again(
    damage, kaggle_server, kaggle_credentials, tmp_path
):
    served = _pet_zip()
    kaggle_server.add_dataset(DATASET, served)
    raw = tmp_path / "raw"
    download_source("kaggle", raw, dataset=DATASET)
    archive = raw / "pets.zip"
    if damage == "truncated":
        archive.write_bytes(served[: len(served) // 2])
    elif damage == "not_a_zip":
        archive.write_bytes(b"<html>an error page saved as a zip</html>")
    elif damage == "other_zip":  # a readable zip whose sha256 is not the recorded one
        archive.write_bytes(_pet_zip(seed=20))
    else:
        (raw / "source.json").unlink()

    record = download_source("kaggle", raw, dataset=DATASET)

    assert kaggle_server.download_requests == 2
    assert archive.read_bytes() == served
    assert record["sha256"] == hashlib.sha256(served).hexdigest()
    assert json.loads((raw / "source.json").read_text()) == record


@pytest.mark.parametrize("redirect", [False, True], ids=["bytes", "redirect"])
def test_an_interrupted_download_leaves_nothing_trusted_and_a_rerun_completes(
    redirect, kaggle_server, kaggle_credentials, tmp_path, capfd
):
    served = _pet_zip(padding_bytes=3 << 20)
    kaggle_server.add_dataset(DATASET, served)
    kaggle_server.redirect = redirect
    kaggle_server.interrupt_downloads = 1
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "mnist.zip").write_bytes(b"an archive of an earlier source")
    (raw / "source.json").write_text(json.dumps({"source": "mnist", "archive": "mnist.zip"}))

    with pytest.raises(KaggleDownloadError, match="interrupted; rerun to resume") as error:
        download_source("kaggle", raw, dataset=DATASET, download_retries=0)

    assert not list(raw.glob("*.zip")) and not (raw / "source.json").exists()
    _assert_no_secrets(capfd, tmp_path, str(error.value))

    record = download_source("kaggle", raw, dataset=DATASET, download_retries=0)

    assert (raw / "pets.zip").read_bytes() == served
    assert record["sha256"] == hashlib.sha256(served).hexdigest()
    assert _files_under(raw) == ["pets.zip", "source.json"]
    resumed_from = [int(r.range.removeprefix("bytes=").rstrip("-"))
                    for r in kaggle_server.requests if r.range]
    if redirect:  # the file URL offers byte ranges: the rerun continues the partial file
        assert len(resumed_from) == 1 and 0 < resumed_from[0] < len(served)
    else:  # no ranges: the rerun starts over
        assert resumed_from == []


def test_an_interruption_is_resumed_within_the_call_by_default(
    kaggle_server, kaggle_credentials, tmp_path
):
    # The client waits 2-3 s before its first retry; this is the one test that pays it.
    served = _pet_zip(padding_bytes=3 << 20)
    kaggle_server.add_dataset(DATASET, served)
    kaggle_server.redirect = True
    kaggle_server.interrupt_downloads = 1
    raw = tmp_path / "raw"

    record = download_source("kaggle", raw, dataset=DATASET)

    assert (raw / "pets.zip").read_bytes() == served
    assert record["bytes"] == len(served) and kaggle_server.download_requests == 1
    assert [r.range is not None for r in kaggle_server.requests if r.method == "GET"] == [
        False, True
    ]
    assert _files_under(raw) == ["pets.zip", "source.json"]


def test_a_download_that_is_not_a_zip_is_refused(kaggle_server, kaggle_credentials, tmp_path):
    kaggle_server.add_dataset(DATASET, b"<html>temporarily unavailable</html>")
    raw = tmp_path / "raw"

    with pytest.raises(KaggleDownloadError, match="not a readable zip"):
        download_source("kaggle", raw, dataset=DATASET)

    assert _files_under(raw) == []


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("no_credentials", "No Kaggle credentials found: put kaggle.json from https://www.kaggle"),
        ("wrong_key", r"rejected the credentials \(HTTP 401\)"),
        ("wrong_token", "rejected the API token in KAGGLE_API_TOKEN"),
        ("rules_not_accepted", (f"open https://www.kaggle.com/datasets/{DATASET} while logged in "
                               "and accept its rules")),
        ("unknown_dataset", ("no dataset 'tester/no-such-pets' .HTTP 404.: data.kaggle.dataset "
                            "must be owner/name of an existing dataset")),
        ("offline", "Could not reach Kaggle at 127.0.0.1:[0-9]+: check the network connection"),
    ],
)
def test_failures_stop_with_one_sentence_saying_what_to_do(
    failure, expected, kaggle_server, kaggle_home, monkeypatch, tmp_path, capfd
):
    kaggle_server.add_dataset(DATASET, _pet_zip())
    dataset = DATASET
    if failure == "wrong_token":
        monkeypatch.setenv("KAGGLE_API_TOKEN", WRONG_TOKEN)
    elif failure != "no_credentials":
        monkeypatch.setenv("KAGGLE_USERNAME", TEST_USERNAME)
        monkeypatch.setenv("KAGGLE_KEY", WRONG_KEY if failure == "wrong_key" else TEST_KEY)
    if failure == "rules_not_accepted":
        kaggle_server.rules_not_accepted.add(DATASET)
    if failure == "unknown_dataset":
        dataset = "tester/no-such-pets"
    if failure == "offline":
        kaggle_server.stop()
    raw = tmp_path / "raw"

    with pytest.raises(KaggleDownloadError, match=expected) as error:
        download_source("kaggle", raw, dataset=dataset)

    message = str(error.value)
    assert isinstance(error.value, ValueError)  # the stage runner prints it as one line, exit 2
    assert "\n" not in message and message.endswith(".")
    assert kaggle_server.download_requests == (1 if failure == "rules_not_accepted" else 0)
    assert not list(raw.glob("*.zip")) and not (raw / "source.json").exists()
    output = _assert_no_secrets(capfd, tmp_path, message)
    assert "Authentication required" not in output  # the client's page of help is replaced


@pytest.mark.parametrize("where", ["env_vars", "kaggle_json", "default_kaggle_json", "api_token"])
def test_every_kind_of_credentials_the_client_reads_works(
    where, kaggle_server, kaggle_home, monkeypatch, tmp_path, capfd
):
    kaggle_server.add_dataset(DATASET, _pet_zip())
    kaggle_json = json.dumps({"username": TEST_USERNAME, "key": TEST_KEY})
    if where == "env_vars":
        monkeypatch.setenv("KAGGLE_USERNAME", TEST_USERNAME)
        monkeypatch.setenv("KAGGLE_KEY", TEST_KEY)
    elif where == "kaggle_json":  # in KAGGLE_CONFIG_DIR
        config_dir = tmp_path / "home" / "kaggle-config"
        config_dir.mkdir()
        (config_dir / "kaggle.json").write_text(kaggle_json)
        (config_dir / "kaggle.json").chmod(0o600)
        monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))
    elif where == "default_kaggle_json":  # ~/.kaggle/kaggle.json
        monkeypatch.delenv("KAGGLE_CONFIG_DIR")
        (kaggle_home / ".kaggle" / "kaggle.json").write_text(kaggle_json)
        (kaggle_home / ".kaggle" / "kaggle.json").chmod(0o600)
    else:
        monkeypatch.setenv("KAGGLE_API_TOKEN", TEST_API_TOKEN)

    record = download_source("kaggle", tmp_path / "raw", dataset=DATASET)

    assert record["class_counts"] == {"Cat": 2, "Dog": 3}
    dataset_calls = [r for r in kaggle_server.requests if "DatasetApiService" in r.route]
    expected_scheme = "bearer" if where == "api_token" else "basic"
    assert dataset_calls and {r.auth for r in dataset_calls} == {expected_scheme}
    _assert_no_secrets(capfd, tmp_path)


def test_subprocess_env_routes_a_child_process_through_the_server(
    kaggle_server, kaggle_home, tmp_path, capfd
):
    served = _pet_zip()
    kaggle_server.add_dataset(DATASET, served, version=4)
    kaggle_server.redirect = True
    raw = tmp_path / "raw"
    # os.environ already has the fake HOME and KAGGLE_CONFIG_DIR of the kaggle_home fixture.
    # VERBOSE=1 would make the client print every request's headers, Authorization included.
    env = {**os.environ, **kaggle_server.subprocess_env(), "VERBOSE": "1"}
    script = (
        "import sys; from pixelflip.data.sources import download_source; "
        "print(download_source('kaggle', sys.argv[1], dataset=sys.argv[2])['version'])"
    )

    child = subprocess.run([sys.executable, "-c", script, str(raw), DATASET], env=env,
                           capture_output=True, text=True, check=False)

    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip().endswith("4")
    assert (raw / "pets.zip").read_bytes() == served
    assert kaggle_server.download_requests == 1
    # Every request came through the proxy route, addressed to the client's LOCALHOST endpoint.
    assert kaggle_server.requests and all(
        r.absolute and r.host == "localhost" for r in kaggle_server.requests
    )
    _assert_no_secrets(capfd, tmp_path, child.stdout, child.stderr)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [(None, "needs a dataset slug owner/name"), ("pets", "must be owner/name"),
     ("a/b/c", "must be owner/name"), ("tester/", "must be owner/name")],
)
def test_a_bad_slug_is_refused_before_any_download(dataset, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        download_source("kaggle", tmp_path / "raw", dataset=dataset)
    with pytest.raises(ValueError, match="download_retries"):
        download_source("kaggle", tmp_path / "raw", dataset="tester/pets", download_retries=-1)


@pytest.fixture
def silent_endpoint():
    """A Kaggle endpoint that accepts connections (the kernel's backlog) and never answers."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield "http://127.0.0.1:%d" % listener.getsockname()[1]


@pytest.mark.parametrize("endpoint", ["refused", "silent"])
def test_an_unanswering_endpoint_ends_with_one_sentence_naming_it(
    endpoint, kaggle_server, kaggle_credentials, silent_endpoint, monkeypatch, tmp_path
):
    import threading

    from kagglesdk import kaggle_env

    from pixelflip.data.kaggle import download_kaggle_zip

    url = kaggle_server.url if endpoint == "refused" else silent_endpoint
    if endpoint == "refused":
        kaggle_server.stop()
    else:
        for env in (kaggle_env.KaggleEnv.PROD, kaggle_env.KaggleEnv.LOCAL):
            monkeypatch.setitem(kaggle_env._env_to_endpoint, env, url)
    raw = tmp_path / "raw"
    raw.mkdir()
    outcome = []

    def download():
        try:
            download_kaggle_zip(DATASET, raw / "pets.zip", request_timeout=1)
        except Exception as error:  # noqa: BLE001 (the test asserts which one below)
            outcome.append(error)

    # In a thread, so that a hang fails the test instead of stopping the suite.
    worker = threading.Thread(target=download, daemon=True)
    worker.start()
    worker.join(timeout=120)

    assert not worker.is_alive(), "the download hung on an endpoint that does not answer"
    assert len(outcome) == 1 and isinstance(outcome[0], KaggleDownloadError), outcome
    message = str(outcome[0])
    assert url.removeprefix("http://") in message and "\n" not in message
    expected = "Could not reach Kaggle at" if endpoint == "refused" else "did not answer within 1 s"
    assert expected in message
    assert not list(raw.iterdir())
