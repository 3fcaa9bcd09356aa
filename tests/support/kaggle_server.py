"""A local stand-in for Kaggle's API, spoken to by the real ``kaggle`` client in tests.

``KaggleTestServer`` answers the calls that ``pixelflip.data.kaggle`` makes, the way
``api.kaggle.com`` does for ``kaggle==2.2.4`` / ``kagglesdk==0.1.37``: every call is a JSON
``POST <base>/v1/<service>/<method>``, errors are JSON ``{"code": ..., "message": ...}`` with the
same HTTP status.

- ``security.OAuthService/IntrospectToken``: ``{"active": true, "username": ...}`` for the
  configured ``api_token`` (what the client asks when ``KAGGLE_API_TOKEN`` is set).
- ``datasets.DatasetApiService/GetDataset``: ``{"ref", "title", "currentVersionNumber"}``.
- ``datasets.DatasetApiService/DownloadDataset``: the zip bytes, or with ``redirect=True`` a 302 to
  ``/files/<owner>/<name>/<version>/<name>.zip`` on the same server, which serves the bytes without
  credentials (like the signed storage URL Kaggle redirects to) with an ETag and byte ranges, so
  the client can resume a partial download.

Credentials are checked on the dataset calls (HTTP basic ``username:key`` or a bearer token);
anything else gets 401. A slug in ``rules_not_accepted`` gets 403 on download, an unknown slug
404. ``interrupt_downloads = n`` cuts the next ``n`` zip bodies half-way and drops the connection.

Two ways to point the client at it:

- in-process: entering the context manager replaces the client's production (and ``LOCALHOST``)
  endpoint in ``kagglesdk.kaggle_env._env_to_endpoint`` by this server's URL; leaving restores it.
- subprocess: ``subprocess_env()`` gives the variables for a child process. The client maps
  ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` to ``http://localhost`` (port 80, path prefix ``/api``) and
  ``requests`` sends plain-http traffic through ``HTTP_PROXY``, so naming this server as the proxy
  routes every request here. ``NO_PROXY`` is emptied so that ``localhost`` is not bypassed.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

TEST_USERNAME = "pixelflip-tester"
TEST_KEY = "0123456789abcdef0123456789abcdef"  # what a kaggle.json key looks like: 32 hex digits
TEST_API_TOKEN = "KGAT_f00dfacef00dfacef00dfacef00dface"

_DATASET_SERVICE = "/v1/datasets.DatasetApiService/"
_INTROSPECT = "/v1/security.OAuthService/IntrospectToken"
_FILES = "/files/"
# Fixed, so that the ETag/Last-Modified pair the client keeps for resuming stays valid.
_LAST_MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)


@dataclass
class LoggedRequest:
    """One request the server received."""

    method: str
    route: str  # the path with any ``/api`` prefix removed, e.g. ``/v1/datasets.../GetDataset``
    host: str  # the Host header (``localhost`` when the request came through the proxy)
    absolute: bool  # whether the request line held a full URL, as requests sends to a proxy
    auth: str  # "basic", "bearer" or "" (the scheme only, never the secret)
    range: str | None = None
    body: dict = field(default_factory=dict)


class KaggleTestServer:
    """Plays Kaggle's dataset API on ``127.0.0.1`` for the real ``kaggle`` client.

    Args:
        datasets: ``{"owner/name": zip bytes}`` served at version 1 (``add_dataset`` sets others).
        username, key: the legacy API key the server accepts (HTTP basic auth).
        api_token: the bearer token it accepts (``KAGGLE_API_TOKEN``).
        redirect: answer ``DownloadDataset`` with a 302 to a file URL instead of the bytes.

    Attributes:
        download_requests: how many ``DownloadDataset`` calls arrived.
        requests: every request, in order (``LoggedRequest``).
        interrupt_downloads: how many of the next zip bodies to cut half-way.
        rules_not_accepted: slugs whose download answers 403.
    """

    def __init__(
        self,
        datasets: dict[str, bytes] | None = None,
        *,
        username: str = TEST_USERNAME,
        key: str = TEST_KEY,
        api_token: str = TEST_API_TOKEN,
        redirect: bool = False,
    ):
        self.username, self.key, self.api_token = username, key, api_token
        self.redirect = redirect
        self.interrupt_downloads = 0
        self.rules_not_accepted: set[str] = set()
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._datasets: dict[str, tuple[int, bytes]] = {}
        for slug, content in (datasets or {}).items():
            self.add_dataset(slug, content)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.fake = self
        self._thread: threading.Thread | None = None
        self._saved_endpoints: dict | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def download_requests(self) -> int:
        return sum(request.route == _DATASET_SERVICE + "DownloadDataset"
                   for request in self.requests)

    def add_dataset(self, slug: str, content: bytes, *, version: int = 1) -> None:
        """Serve ``content`` as the zip of ``slug`` (``owner/name``) at ``version``."""
        self._datasets[slug] = (version, content)

    def subprocess_env(self, *, credentials: bool = True) -> dict[str, str]:
        """Environment variables that send a child process's ``kaggle`` client here.

        Merge them into the child's environment, with ``HOME`` (and ``KAGGLE_CONFIG_DIR``) pointing
        at a scratch folder so that no real ``kaggle.json`` is read. ``credentials`` adds
        ``KAGGLE_USERNAME``/``KAGGLE_KEY`` that this server accepts.
        """
        env = {
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "HTTP_PROXY": self.url,
            "http_proxy": self.url,
            "NO_PROXY": "",
            "no_proxy": "",
        }
        if credentials:
            env.update({"KAGGLE_USERNAME": self.username, "KAGGLE_KEY": self.key})
        return env

    def start(self) -> Self:
        from kagglesdk import kaggle_env

        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._saved_endpoints = dict(kaggle_env._env_to_endpoint)
        for env in (kaggle_env.KaggleEnv.PROD, kaggle_env.KaggleEnv.LOCAL):
            kaggle_env._env_to_endpoint[env] = self.url
        return self

    def stop(self) -> None:
        """Stop serving and close the port (the endpoint stays pointed here until exit)."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
        if self._saved_endpoints is not None:
            from kagglesdk import kaggle_env

            kaggle_env._env_to_endpoint.update(self._saved_endpoints)

    # --- what the handler asks -------------------------------------------------------------

    def _log(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_interrupt(self) -> bool:
        with self._lock:
            if self.interrupt_downloads > 0:
                self.interrupt_downloads -= 1
                return True
            return False

    def _auth_scheme_if_valid(self, header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme == "Basic":
            try:
                decoded = base64.b64decode(value).decode()
            except ValueError:
                return None
            return "basic" if decoded == f"{self.username}:{self.key}" else None
        if scheme == "Bearer":
            return "bearer" if value == self.api_token else None
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A client retry may resend a POST's Content-Length without its body; never wait forever.
    timeout = 10

    def log_message(self, format, *args):
        pass  # quiet: pytest shows the test's own output only

    @property
    def fake(self) -> KaggleTestServer:
        return self.server.fake

    def do_POST(self):
        request = self._logged_request(self._read_json())
        if request.route == _INTROSPECT:
            active = request.body.get("token") == self.fake.api_token
            return self._json(200, {"active": active,
                                    "username": self.fake.username if active else ""})
        if not request.route.startswith(_DATASET_SERVICE):
            return self._error(404, f"No such method {request.route}")
        if self.fake._auth_scheme_if_valid(self.headers.get("Authorization", "")) is None:
            return self._error(401, "Unauthenticated")
        slug = f"{request.body.get('ownerSlug', '')}/{request.body.get('datasetSlug', '')}"
        if slug not in self.fake._datasets:
            return self._error(404, "Not found")
        version, content = self.fake._datasets[slug]
        method = request.route.removeprefix(_DATASET_SERVICE)
        if method == "GetDataset":
            return self._json(200, {"ref": slug, "title": slug.split("/")[1],
                                    "currentVersionNumber": version})
        if method != "DownloadDataset":
            return self._error(404, f"No such method {request.route}")
        if slug in self.fake.rules_not_accepted:
            return self._error(403, "Permission 'datasets.get' was denied")
        asked = request.body.get("datasetVersionNumber")
        if asked is not None and int(asked) != version:
            return self._error(404, f"Version {asked} not found")
        if self.fake.redirect:
            owner, name = slug.split("/")
            location = f"http://{request.host}{_FILES}{owner}/{name}/{version}/{name}.zip"
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._send_zip(content, ranges=False)

    def do_GET(self):
        request = self._logged_request({})
        parts = request.route.removeprefix(_FILES).split("/")
        if not request.route.startswith(_FILES) or len(parts) != 4:
            return self._error(404, "Not found")
        owner, name, version, _ = parts
        served = self.fake._datasets.get(f"{owner}/{name}")
        if served is None or str(served[0]) != version:
            return self._error(404, "Not found")
        return self._send_zip(served[1], ranges=True)

    # --- helpers ---------------------------------------------------------------------------

    def _logged_request(self, body: dict) -> LoggedRequest:
        target = urlsplit(self.path)
        route = target.path.removeprefix("/api")
        authorization = self.headers.get("Authorization", "")
        request = LoggedRequest(
            method=self.command,
            route=route,
            host=self.headers.get("Host", ""),
            absolute=bool(target.scheme),
            auth=authorization.partition(" ")[0].lower(),
            range=self.headers.get("Range"),
            body=body,
        )
        self.fake._log(request)
        return request

    def _read_json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            raw = self.rfile.read(length) if length else b""
        except TimeoutError:
            raw = b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    def _send_zip(self, content: bytes, *, ranges: bool) -> None:
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        start = 0
        requested = self.headers.get("Range", "")
        # Only "bytes=N-" (what the client sends), and only if the zip is still the one whose
        # ETag the client kept (If-Range); otherwise the whole zip, as a real server does.
        if (ranges and requested.startswith("bytes=") and requested.endswith("-")
                and self.headers.get("If-Range", etag) == etag):
            start = int(requested.removeprefix("bytes=").removesuffix("-"))
        if start >= len(content):
            start = 0
        payload = content[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(payload)))
        if ranges:
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", _LAST_MODIFIED)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        try:
            if self.fake._take_interrupt():
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True  # the client sees the body end early
            else:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up first; nothing to do

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"code": status, "message": message})
