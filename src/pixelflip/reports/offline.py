"""Make a built Great Expectations Data Docs site render offline.

Great Expectations' page templates load jQuery, Bootstrap, bootstrap-table, Font Awesome and
vega from CDNs; without them the index's validation table (filled by bootstrap-table) stays
blank. ``make_offline`` copies the vendored files (``pixelflip.reports.assets``) into the site's
``static/vendor/`` and points every page at them by relative path, so the folder works opened
from disk, copied elsewhere, or as an MLflow artifact. A page that loads an address the manifest
does not cover is an error, so a Great Expectations upgrade cannot silently bring a CDN back.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from pixelflip.reports.assets import (
    Manifest,
    SiteFile,
    VendoredFile,
    is_remote,
    read_manifest,
)

#: Where the vendored files go inside a site, beside Great Expectations' own ``static/`` files.
SITE_VENDOR_DIR = PurePosixPath("static/vendor")
_PAGE_SUFFIXES = (".html", ".css")
# One attribute of a start tag: name=value, the value double-, single- or un-quoted.
_ATTRIBUTE = re.compile(
    r"""(?P<name>[^\s"'<>/=]+)\s*=\s*(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>[^\s"'=<>`]+))"""
)
# What a style sheet loads: url(...) (``@import url(...)`` too) and ``@import "..."``.
_CSS_LOAD = re.compile(
    r"""url\(\s*(?P<quote>["']?)(?P<url>[^"')]*?)(?P=quote)\s*\)|@import\s+(?P<import_quote>["'])(?P<import_url>[^"']*)(?P=import_quote)"""
)
# Attributes that make a browser fetch; <a href> is a link the reader follows, not a load.
_LOADING_ATTRIBUTES = frozenset({"src", "href"})
_NOT_LOADING_TAGS = frozenset({"a", "area", "base"})
# Subresource integrity needs a CORS fetch, which file:// pages cannot make; checked, then
# dropped (with crossorigin) once the address is local.
_CORS_ATTRIBUTE = re.compile(
    r"""\s+(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?(?=[\s/>])""",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Load:
    """One remote address a page fetches: where in the text, and its start tag if any.

    Attributes:
        start, end: the address's span in the page text (``text[start:end] == url``).
        url: the address as written.
        tag: ``(start, end)`` of the start tag holding it; None inside a style sheet.
    """

    start: int
    end: int
    url: str
    tag: tuple[int, int] | None = None


class _TagFinder(HTMLParser):
    """Records each start tag's span and name, and each ``<style>`` element's text span."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=False)
        self._line_starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.tags: list[tuple[int, int, str]] = []
        self.styles: list[tuple[int, int]] = []
        self._in_style = False

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag, attrs):
        start = self._offset()
        self.tags.append((start, start + len(self.get_starttag_text()), tag))
        self._in_style = tag == "style"

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            start = self._offset()
            self.styles.append((start, start + len(data)))


def _css_loads(text: str, start: int, end: int, tag: tuple[int, int] | None = None) -> list[Load]:
    loads = []
    for match in _CSS_LOAD.finditer(text, start, end):
        group = "url" if match.group("url") is not None else "import_url"
        if is_remote(match.group(group)):
            loads.append(Load(match.start(group), match.end(group), match.group(group), tag))
    return loads


def remote_loads(text: str, suffix: str = ".html") -> list[Load]:
    """Every remote address that a page (``.html``) or a style sheet (``.css``) would fetch."""
    if suffix == ".css":
        return _css_loads(text, 0, len(text))
    finder = _TagFinder(text)
    finder.feed(text)
    finder.close()
    loads = []
    for start, end, name in finder.tags:
        for match in _ATTRIBUTE.finditer(text, start, end):
            value_group = next(group for group in ("double", "single", "bare")
                               if match.group(group) is not None)
            value = match.group(value_group)
            attribute = match.group("name").lower()
            if attribute == "style":
                loads += _css_loads(text, match.start(value_group), match.end(value_group),
                                    (start, end))
            elif (attribute in _LOADING_ATTRIBUTES and name not in _NOT_LOADING_TAGS
                  and is_remote(value)):
                loads.append(Load(match.start(value_group), match.end(value_group), value,
                                  (start, end)))
    for start, end in finder.styles:
        loads += _css_loads(text, start, end)
    return sorted(loads, key=lambda load: load.start)


def _check_integrity(tag_text: str, file: VendoredFile, url: str, where: str) -> None:
    """Raise if the tag pins ``url`` to hashes none of which the vendored file has."""
    for match in _ATTRIBUTE.finditer(tag_text):
        if match.group("name").lower() != "integrity":
            continue
        pins = (match.group("double") or match.group("single") or match.group("bare")).split()
        content = file.local_path.read_bytes()
        for pin in pins:
            algorithm, _, expected = pin.partition("-")
            digest = base64.b64encode(hashlib.new(algorithm, content).digest()).decode()
            if digest == expected.split("?")[0]:
                return
        raise ValueError(f"{where} pins {url} to integrity {' '.join(pins)}, which the vendored "
                         f"{file.relative} does not have: vendor the exact file the page pins.")


def _without_cors(tag_text: str) -> str:
    """``tag_text`` without its integrity and crossorigin attributes (valued or bare)."""
    return _CORS_ATTRIBUTE.sub("", tag_text)


def _site_path(target: VendoredFile | SiteFile) -> PurePosixPath:
    if isinstance(target, VendoredFile):
        return SITE_VENDOR_DIR / target.relative
    return PurePosixPath(target.path)


def _rewritten(text: str, loads: list[Load], page: Path, site_dir: Path,
               manifest: Manifest) -> tuple[str, set[VendoredFile]]:
    """``text`` with each load pointed at its local stand-in, and the vendored files used."""
    where = str(page)
    used: set[VendoredFile] = set()
    pieces, position = [], 0
    # Grouped by start tag (a style sheet's loads stand alone): a tag whose address turns
    # local also loses its integrity pin.
    groups: dict[tuple[int, int], list[Load]] = {}
    for load in loads:
        groups.setdefault(load.tag or (load.start, load.end), []).append(load)
    for (start, end), group in sorted(groups.items()):
        in_tag = group[0].tag is not None
        replacement = text[start:end]
        for load in sorted(group, key=lambda load: load.start, reverse=True):
            target = manifest.target(load.url, where)
            local = site_dir / _site_path(target)
            if isinstance(target, SiteFile) and not local.is_file():
                raise ValueError(f"{where} loads {load.url}, which the manifest maps to "
                                 f"{target.path}, but the site has no such file: map it to a "
                                 "vendored file instead.")
            if isinstance(target, VendoredFile):
                used.add(target)
                if in_tag:
                    _check_integrity(text[start:end], target, load.url, where)
            relative = Path(os.path.relpath(local, page.parent)).as_posix()
            offset = load.start - start
            replacement = replacement[:offset] + relative + replacement[offset + len(load.url):]
        pieces += [text[position:start], _without_cors(replacement) if in_tag else replacement]
        position = end
    pieces.append(text[position:])
    return "".join(pieces), used


def site_pages(site_dir: Path) -> list[Path]:
    """The site's HTML pages and style sheets, outside the vendored files."""
    vendor = site_dir / SITE_VENDOR_DIR
    return sorted(path for path in site_dir.rglob("*")
                  if path.suffix in _PAGE_SUFFIXES and path.is_file()
                  and vendor not in path.parents)


def make_offline(site_dir: str | os.PathLike, manifest: Manifest | None = None) -> list[str]:
    """Point every page of the Data Docs site ``site_dir`` at local copies of what it loads.

    Each vendored package a page uses is copied whole (its licence included) into
    ``site_dir/static/vendor/<package>-<version>/``; a page's remote address becomes the path
    to its stand-in relative to the page. Integrity pins are checked against the local file,
    then dropped with ``crossorigin`` (file:// pages cannot make the CORS fetch they need).

    Args:
        site_dir: the folder Great Expectations built the site in (holding ``index.html``).
        manifest: the asset manifest; the package's ``assets/manifest.json`` by default.

    Returns:
        The remote addresses replaced, sorted, each once.

    Raises:
        ValueError: if a page loads an address the manifest does not cover (the message names
            it and how to add it), or a pinned file differs from its vendored copy.
    """
    site_dir = Path(site_dir)
    manifest = manifest or read_manifest()
    used: set[VendoredFile] = set()
    replaced: set[str] = set()
    rewritten: dict[Path, str] = {}
    # Every page is checked before any is written, so an uncovered address leaves no half-done site.
    for page in site_pages(site_dir):
        text = page.read_text(encoding="utf-8")
        loads = remote_loads(text, page.suffix)
        if loads:
            rewritten[page], page_used = _rewritten(text, loads, page, site_dir, manifest)
            used |= page_used
            replaced |= {load.url for load in loads}
    for package in manifest.packages:
        if any(file in used for file in package.files):
            for file in package.files:
                destination = site_dir / SITE_VENDOR_DIR / file.relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file.local_path, destination)
    for page, text in rewritten.items():
        page.write_text(text, encoding="utf-8")
    return sorted(replaced)
