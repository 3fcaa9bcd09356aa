"""The vendored web assets and the CDN addresses they stand in for, read from ``manifest.json``.

The manifest is the one place that says which npm package, version and file serves each CDN
address, with the file's sha256; ``pixelflip.reports.vendor`` fetches what it lists and
``pixelflip.reports.offline`` and ``pixelflip.reports.dvc_template`` look addresses up in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
MANIFEST_PATH = ASSETS_DIR / "manifest.json"
VENDOR_COMMAND = "python -m pixelflip.reports.vendor"


@dataclass(frozen=True)
class VendoredFile:
    """One file of an npm package, kept unmodified under ``ASSETS_DIR / relative``.

    Attributes:
        package: the npm package name, e.g. ``"@fortawesome/fontawesome-free"``.
        version: the package's exact version.
        path: the file's path inside the package tarball (below its ``package/`` folder).
        sha256: hex digest of the file's bytes.
        urls: the CDN addresses this file stands in for (none for licences and fonts that
            a vendored stylesheet loads by relative path).
    """

    package: str
    version: str
    path: str
    sha256: str
    urls: tuple[str, ...] = ()

    @property
    def relative(self) -> PurePosixPath:
        """``<package name without its @scope>-<version>/<path>``, relative to ``ASSETS_DIR``;
        the package's own layout is kept so that a stylesheet's relative ``url()``s resolve."""
        return PurePosixPath(f"{self.package.rsplit('/', 1)[-1]}-{self.version}") / self.path

    @property
    def local_path(self) -> Path:
        return ASSETS_DIR / self.relative


@dataclass(frozen=True)
class VendoredPackage:
    """An npm package some of whose files are vendored.

    Attributes:
        npm: the package name; ``version``: its exact version.
        license: the path of its licence file among ``files``, or None where the package ships
            none (``license_note`` then says where the licence is stated).
        files: the vendored files, licence included.
        omitted: ``{glob of package paths: why}`` for files a vendored stylesheet names but
            that are left out on purpose.
    """

    npm: str
    version: str
    license: str | None
    files: tuple[VendoredFile, ...]
    omitted: dict[str, str]
    license_note: str = ""


@dataclass(frozen=True)
class SiteFile:
    """A CDN address served by a file that Great Expectations writes into every site itself.

    Attributes:
        url: the address; ``path``: the file, relative to the site folder; ``note``: why.
    """

    url: str
    path: str
    note: str


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json``: vendored packages and Great Expectations' own site files."""

    packages: tuple[VendoredPackage, ...]
    site_files: tuple[SiteFile, ...]
    path: Path = MANIFEST_PATH

    @property
    def files(self) -> tuple[VendoredFile, ...]:
        return tuple(file for package in self.packages for file in package.files)

    def target(self, url: str, where: str) -> VendoredFile | SiteFile:
        """The local stand-in for ``url`` (query and fragment ignored), loaded by ``where``.

        Raises:
            ValueError: if the manifest covers no such address, naming it and how to add it.
        """
        wanted = normalized_url(url)
        targets = {normalized_url(address): file for file in self.files for address in file.urls}
        targets.update({normalized_url(site_file.url): site_file for site_file in self.site_files})
        if wanted not in targets:
            raise ValueError(
                f"{where} loads {url}, which {self.path} does not cover, so it would not render "
                f"offline: add the npm package and file that serve it to 'packages' (with "
                f"{wanted!r} among the file's 'urls') and run `{VENDOR_COMMAND} --update-sha256`,"
                f" or map it to a file of the site under 'site_files'."
            )
        return targets[wanted]

    def vendored(self, url: str, where: str) -> VendoredFile:
        """Like ``target``, for a page outside a Data Docs site: only vendored files serve it."""
        target = self.target(url, where)
        if not isinstance(target, VendoredFile):
            raise ValueError(f"{where} loads {url}, which {self.path} maps to the Data Docs file "
                             f"{target.path}: vendor a file for it under 'packages' instead.")
        return target


def normalized_url(url: str) -> str:
    """``url`` without query or fragment, ``https:`` added to a protocol-relative address.

    Great Expectations appends a cache-busting ``?d=<timestamp>`` to its logo's address, so
    the query cannot take part in the lookup.
    """
    parts = urlsplit(f"https:{url}" if url.startswith("//") else url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def is_remote(url: str) -> bool:
    """Whether a browser would fetch ``url`` from another host (``http(s)://`` or ``//``)."""
    return url.strip().lower().startswith(("http://", "https://", "//"))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    """Parse the manifest; see ``manifest.json``'s ``about`` for what each field means."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    packages = tuple(
        VendoredPackage(
            npm=package["npm"],
            version=package["version"],
            license=package["license"],
            license_note=package.get("license_note", ""),
            omitted=dict(package.get("omitted", {})),
            files=tuple(
                VendoredFile(package["npm"], package["version"], file["path"], file["sha256"],
                             tuple(file["urls"]))
                for file in package["files"]
            ),
        )
        for package in raw["packages"]
    )
    site_files = tuple(SiteFile(item["url"], item["path"], item["note"])
                       for item in raw["site_files"])
    return Manifest(packages, site_files, Path(path))
