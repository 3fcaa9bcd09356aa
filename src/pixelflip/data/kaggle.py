"""Download a Kaggle dataset's zip through the official ``kaggle`` client, kept as Kaggle serves it.

The zip is never unpacked or re-packed (the ``validate`` stage reads straight from it). It is
downloaded to ``<name>.zip.partial`` beside its final place, checked to be a readable zip, and only
then renamed to ``<name>.zip``, so an interrupted download never leaves a zip that a later stage
would trust. The partial file keeps a stable name (not ``pixelflip.stage.files.atomic_path``'s random one)
because the client resumes it on the next run with an HTTP range request when the server allows
it, which matters for an 800 MB download; otherwise it starts over.

Every failure the user can fix (credentials, dataset rules, an unknown slug, the network) is a
``KaggleDownloadError`` with one sentence saying what to do. Credentials are read by the client
itself and never appear in a message or a file written here.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

PARTIAL_SUFFIX = ".partial"
#: Seconds to connect to Kaggle, and to wait for each read of an answer: the client itself sets
#: no timeout on its API calls, so a server that accepts and never answers would hang forever.
REQUEST_TIMEOUT_S = (10.0, 30.0)
# The sidecar the kaggle client writes next to a partial download to prove what it belongs to.
_CLIENT_RESUME_MARKER_SUFFIX = ".kaggle-partial"
_SETTINGS_URL = "https://www.kaggle.com/settings"


class KaggleDownloadError(ValueError):
    """A Kaggle download failed for a reason the user can fix; the message says how."""


def split_dataset_slug(dataset: str) -> tuple[str, str]:
    """``"owner/name"`` -> ``("owner", "name")``.

    Raises:
        ValueError: if ``dataset`` is not exactly two non-empty parts separated by one ``/``.
    """
    parts = dataset.split("/") if isinstance(dataset, str) else []
    if len(parts) != 2 or not all(part.strip() for part in parts):
        raise ValueError(
            f"Kaggle dataset {dataset!r} is not a dataset slug; data.kaggle.dataset must be "
            "owner/name, as in https://www.kaggle.com/datasets/owner/name."
        )
    return parts[0], parts[1]


def archive_name(dataset: str) -> str:
    """File name of the dataset's zip: ``"<name>.zip"`` for ``"owner/name"``, as Kaggle names it."""
    return f"{split_dataset_slug(dataset)[1]}.zip"


def partial_path(archive_path: str | os.PathLike) -> Path:
    """Where the zip for ``archive_path`` is downloaded before it is checked and renamed."""
    archive_path = Path(archive_path)
    return archive_path.with_name(archive_path.name + PARTIAL_SUFFIX)


def remove_partial_downloads(folder: str | os.PathLike, *, keep: str | os.PathLike | None = None) -> None:
    """Delete leftover partial downloads (and the client's resume markers) in ``folder``.

    ``keep`` names an archive whose partial download is kept so that it can still be resumed.
    """
    kept = partial_path(keep).name if keep is not None else None
    for leftover in Path(folder).glob(f"*.zip{PARTIAL_SUFFIX}*"):
        if kept is None or leftover.name not in (kept, kept + _CLIENT_RESUME_MARKER_SUFFIX):
            leftover.unlink(missing_ok=True)


def is_readable_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip whose member list can be read (a truncated zip's cannot)."""
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    return True


def download_kaggle_zip(
    dataset: str, archive_path: str | os.PathLike, *, max_retries: int = 5,
    request_timeout: float | tuple[float, float] = REQUEST_TIMEOUT_S,
) -> int:
    """Download the current version of a Kaggle dataset to ``archive_path``, byte for byte.

    Credentials are whatever the ``kaggle`` client finds: ``KAGGLE_API_TOKEN`` (or
    ``~/.kaggle/access_token``), ``KAGGLE_USERNAME`` and ``KAGGLE_KEY``, ``kaggle.json`` in
    ``KAGGLE_CONFIG_DIR`` or ``~/.kaggle``, or a ``kaggle auth login`` session. The client prints
    a progress bar on stderr.

    Args:
        dataset: the slug, ``"owner/name"``.
        archive_path: where the zip ends up; replaced only once a complete, readable zip arrived.
        max_retries: how many times the client resumes an interrupted transfer (sleeping 2, 4,
            8, ... seconds in between) before giving up; 0 gives up at the first interruption.
        request_timeout: seconds to connect and to wait for each read, as ``requests`` takes
            it (one number for both, or ``(connect, read)``), for every request of the client.

    Returns:
        The dataset version number that was downloaded (Kaggle's current version, asked for
        explicitly so that the number and the bytes always match).

    Raises:
        ValueError: if ``dataset`` is not ``owner/name``.
        KaggleDownloadError: missing or rejected credentials, rules not accepted (403), unknown
            dataset (404), Kaggle unreachable, an interrupted transfer (its partial file is kept
            for the next run to resume), or a download that is not a readable zip.
    """
    owner, name = split_dataset_slug(dataset)
    archive_path = Path(archive_path)
    partial = partial_path(archive_path)
    with _translated_errors(dataset, request_timeout), _default_timeout(request_timeout):
        api = _authenticated_api()
        from kagglesdk.datasets.types.dataset_api_service import (
            ApiDownloadDatasetRequest,
            ApiGetDatasetRequest,
        )

        with api.build_kaggle_client() as client:
            datasets = client.datasets.dataset_api_client
            info_request = ApiGetDatasetRequest()
            info_request.owner_slug, info_request.dataset_slug = owner, name
            version = datasets.get_dataset(info_request).current_version_number
            if not version:
                raise KaggleDownloadError(
                    f"Kaggle reports no version of dataset {dataset}; check "
                    f"https://www.kaggle.com/datasets/{dataset} and rerun."
                )
            print(f"Downloading Kaggle dataset {dataset} version {version} to {archive_path}",
                  flush=True)
            download_request = ApiDownloadDatasetRequest()
            download_request.owner_slug, download_request.dataset_slug = owner, name
            download_request.dataset_version_number = version
            response = datasets.download_dataset(download_request)
            try:
                with _interrupted_transfer_errors(dataset, partial):
                    api.download_file(response, str(partial), client.http_client(), quiet=False,
                                      resume=True, max_retries=max_retries,
                                      timeout=request_timeout)
            finally:
                response.close()
    if not is_readable_zip(partial):
        partial.unlink(missing_ok=True)
        raise KaggleDownloadError(
            f"Kaggle sent a file for dataset {dataset} that is not a readable zip; rerun to "
            "download it again."
        )
    os.replace(partial, archive_path)
    return version


def _authenticated_api():
    """A ``KaggleApi`` that has read the credentials, or a ``KaggleDownloadError`` saying how."""
    # Importing the package authenticates once at import time and prints a page of help
    # when there are no credentials; our own message replaces it.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError as error:
            raise KaggleDownloadError(
                "The kaggle package is not installed; install the project's requirements "
                "(pip install -r requirements.txt) and rerun."
            ) from error
    api = KaggleApi()
    # The class reads KAGGLE_CONFIG_DIR and VERBOSE once at import; read them now instead, and
    # never run verbose, which prints every request's headers (the Authorization header too).
    api.config_dir = str(_config_dir())
    api.config = os.path.join(api.config_dir, api.config_file)
    api.args = [arg for arg in KaggleApi.args if arg not in ("--verbose", "-v")]
    client_output = io.StringIO()
    try:
        with contextlib.redirect_stdout(client_output):
            api.authenticate()
    except SystemExit:
        from kagglesdk.kaggle_env import get_access_token_from_env

        if get_access_token_from_env()[0]:
            raise KaggleDownloadError(
                "Kaggle rejected the API token in KAGGLE_API_TOKEN (or ~/.kaggle/access_token): "
                f"create a new one at {_SETTINGS_URL} and rerun."
            ) from None
        raise KaggleDownloadError(
            f"No Kaggle credentials found: put kaggle.json from {_SETTINGS_URL} in ~/.kaggle/ "
            "(or KAGGLE_CONFIG_DIR) with chmod 600, or set KAGGLE_USERNAME and KAGGLE_KEY, "
            "or KAGGLE_API_TOKEN."
        ) from None
    # What the client says on success is a warning worth keeping (a kaggle.json others can read).
    sys.stdout.write(client_output.getvalue())
    return api


def _config_dir() -> Path:
    """The folder the kaggle client reads ``kaggle.json`` from, by the client's own rule."""
    configured = os.environ.get("KAGGLE_CONFIG_DIR")
    if configured:
        return Path(configured)
    legacy = Path.home() / ".kaggle"
    if legacy.exists() or not sys.platform.startswith("linux"):
        return legacy
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"


@contextlib.contextmanager
def _default_timeout(timeout: float | tuple[float, float]) -> Iterator[None]:
    """Give every ``requests`` call without a timeout this one, while the block runs.

    The kaggle client sends its API calls (the token check while authenticating included)
    through sessions it creates itself, with no timeout and no way to pass one; wrapping
    ``Session.send`` for the download is the one place that reaches them all. Calls that pass
    their own timeout (the client's resumed transfers) keep it.
    """
    import requests

    original = requests.Session.send

    def send(session, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = timeout
        return original(session, request, **kwargs)

    requests.Session.send = send
    try:
        yield
    finally:
        requests.Session.send = original


@contextlib.contextmanager
def _translated_errors(dataset: str, timeout: float | tuple[float, float]) -> Iterator[None]:
    """Turn the client's HTTP and network errors into one-sentence ``KaggleDownloadError``s."""
    import requests

    try:
        yield
    except requests.HTTPError as error:
        raise KaggleDownloadError(_http_error_message(dataset, error)) from error
    except (requests.ConnectionError, requests.Timeout) as error:
        request = getattr(error, "request", None)
        host = urlsplit(request.url).netloc if request is not None and request.url else ""
        where = f" at {host}" if host else ""
        if isinstance(error, requests.Timeout):
            seconds = max(timeout) if isinstance(timeout, tuple) else timeout
            raise KaggleDownloadError(
                f"Kaggle{where} did not answer within {seconds:g} s: check the network "
                "connection or proxy settings (HTTPS_PROXY), or try again later."
            ) from error
        raise KaggleDownloadError(
            f"Could not reach Kaggle{where}: check the network connection or proxy settings "
            "(HTTPS_PROXY), then rerun."
        ) from error


@contextlib.contextmanager
def _interrupted_transfer_errors(dataset: str, partial: Path) -> Iterator[None]:
    """Errors while the zip streams in: the transfer broke (resumable) or the disk refused it."""
    import requests
    import urllib3

    try:
        yield
    except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError) as error:
        # ValueError: the client's "downloaded size does not match" check.
        raise KaggleDownloadError(
            f"The download of Kaggle dataset {dataset} was interrupted; rerun to resume it "
            f"(the partial file is {partial})."
        ) from error
    except OSError as error:
        raise KaggleDownloadError(
            f"Could not write {partial} ({error.strerror or error}); free disk space or fix the "
            "folder's permissions, then rerun."
        ) from error


def _http_error_message(dataset: str, error) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None) or 0
    if status < 400 and response is not None:
        # The client raises for a JSON body whose "code" is an error even under HTTP 200.
        with contextlib.suppress(ValueError, AttributeError):
            status = int(response.json().get("code", status))
    page = f"https://www.kaggle.com/datasets/{dataset}"
    if status == 401:
        return (
            "Kaggle rejected the credentials (HTTP 401): create a new API token at "
            f"{_SETTINGS_URL} and update kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY or "
            "KAGGLE_API_TOKEN, then rerun."
        )
    if status == 403:
        return (
            f"Kaggle refused to serve dataset {dataset} (HTTP 403): open {page} while logged in "
            "and accept its rules/terms (or ask for access), then rerun."
        )
    if status == 404:
        return (
            f"Kaggle has no dataset {dataset!r} (HTTP 404): data.kaggle.dataset must be "
            "owner/name of an existing dataset, as in https://www.kaggle.com/datasets/owner/name."
        )
    if status == 429:
        return "Kaggle is rate-limiting this account (HTTP 429); wait a few minutes, then rerun."
    return f"Kaggle answered HTTP {status} for dataset {dataset}; try again later."
