"""The vendored assets match their manifest, and ``make_offline`` points pages at them or fails
naming the address it cannot serve."""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import hashlib
import importlib.util
import posixpath
import re
from pathlib import Path

import pytest

from pixelflip.reports.assets import (
    ASSETS_DIR,
    MANIFEST_PATH,
    file_sha256,
    normalized_url,
    read_manifest,
)
from pixelflip.reports.offline import SITE_VENDOR_DIR, make_offline, remote_loads

MANIFEST = read_manifest()
JQUERY_URL = "https://code.jquery.com/jquery-3.7.1.min.js"
BOOTSTRAP_CSS_URL = "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"
FONT_AWESOME_URL = "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css"
LOGO_URL = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png"
UNKNOWN_URL = "https://cdn.example.org/new-widget@2.0.0/widget.min.js"
# Found without importing Great Expectations, which takes seconds.
GE_VIEW = Path(importlib.util.find_spec("great_expectations").origin).parent / "render" / "view"


def _vendored(url: str):
    return MANIFEST.vendored(url, "this test")


def _sri(path: Path, algorithm: str = "sha384") -> str:
    digest = hashlib.new(algorithm, path.read_bytes()).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def test_every_vendored_file_has_its_manifest_sha256():
    assert MANIFEST.files
    assert {str(file.relative): file_sha256(file.local_path) for file in MANIFEST.files} == {
        str(file.relative): file.sha256 for file in MANIFEST.files}


def test_assets_folder_holds_exactly_the_listed_files_and_each_package_its_licence():
    present = {path for path in ASSETS_DIR.rglob("*") if path.is_file()} - {MANIFEST_PATH}
    assert present == {file.local_path for file in MANIFEST.files}
    for package in MANIFEST.packages:
        if package.license is None:
            assert package.license_note, f"{package.npm} says nothing of its licence"
        else:
            assert package.license in {file.path for file in package.files}, package.npm


def test_no_two_files_stand_in_for_one_address():
    addresses = [normalized_url(url) for file in MANIFEST.files for url in file.urls]
    addresses += [normalized_url(site_file.url) for site_file in MANIFEST.site_files]
    assert len(addresses) == len(set(addresses))


def test_vendored_style_sheets_load_only_vendored_files_or_files_left_out_on_purpose():
    for package in MANIFEST.packages:
        paths = {file.path for file in package.files}
        for file in package.files:
            if not file.path.endswith(".css"):
                continue
            text = file.local_path.read_text(encoding="utf-8")
            assert remote_loads(text, ".css") == [], file.relative
            for url in _relative_css_urls(text):
                wanted = posixpath.normpath(posixpath.join(posixpath.dirname(file.path), url))
                assert wanted in paths or any(
                    fnmatch.fnmatch(wanted, pattern) for pattern in package.omitted), (
                    f"{file.relative} loads {wanted}, neither vendored nor listed as omitted")


def _relative_css_urls(text: str) -> list[str]:
    return [url.split("?")[0].split("#")[0]
            for url in re.findall(r"""url\(\s*["']?([^"')]+)""", text)
            if not url.startswith(("data:", "#"))]


def test_pinned_files_have_the_integrity_great_expectations_pins():
    # GE's template pins Popper and Bootstrap's script: the vendored bytes are those exact files.
    template = (GE_VIEW / "templates" / "js_script_imports.j2").read_text()
    for url in ("https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",
                "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js"):
        assert f'src="{url}" integrity="{_sri(_vendored(url).local_path)}"' in template


@pytest.mark.parametrize("template", ["templates/js_script_imports.j2", "templates/page.j2",
                                      "templates/index_page.j2", "templates/page_minimal.j2",
                                      "static/styles/data_docs_default_styles.css"])
def test_every_cdn_address_in_great_expectations_templates_is_covered(template):
    path = GE_VIEW / template
    loads = remote_loads(path.read_text(), path.suffix)
    assert loads, f"{template} loads nothing remote: is this test still looking at the right file?"
    for load in loads:
        MANIFEST.target(load.url, template)  # raises for an address the manifest lacks


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    site = tmp_path / "site"
    for relative, text in pages.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)
    (site / "static" / "images").mkdir(parents=True, exist_ok=True)
    (site / "static" / "images" / "logo-long.png").write_bytes(b"png")
    return site


def test_pages_at_any_depth_point_at_local_copies_by_relative_path(tmp_path):
    jquery = _vendored(JQUERY_URL)
    page = (f'<html><head><script src="{JQUERY_URL}"></script>\n'
            f'<link rel="stylesheet" href="{FONT_AWESOME_URL}">\n'
            f"<style>.brand {{ background: url('{LOGO_URL}') }}</style></head>\n"
            f'<body><img class="NO-CACHE" src="{LOGO_URL}?d=20260101T000000Z" alt="logo"/>\n'
            f'<a href="https://greatexpectations.io">Great Expectations</a></body></html>')
    site = _site(tmp_path, {"index.html": page, "validations/suite/run/batch.html": page})

    replaced = make_offline(site)

    assert set(replaced) == {JQUERY_URL, FONT_AWESOME_URL, LOGO_URL,
                             f"{LOGO_URL}?d=20260101T000000Z"}
    nested = (site / "validations/suite/run/batch.html").read_text()
    assert f'<script src="../../../static/vendor/{jquery.relative}"></script>' in nested
    assert "url('../../../static/images/logo-long.png')" in nested
    assert 'src="../../../static/images/logo-long.png" alt="logo"' in nested
    index = (site / "index.html").read_text()
    assert f'src="static/vendor/{jquery.relative}"' in index
    # A link the reader follows is not a load: it stays as it was.
    assert '<a href="https://greatexpectations.io">' in index
    assert remote_loads(index) == [] and remote_loads(nested) == []
    # Font Awesome's whole package comes along: its style sheet loads the font by relative path.
    font = _vendored(FONT_AWESOME_URL).relative.parent.parent / "webfonts" / "fa-solid-900.woff2"
    assert (site / SITE_VENDOR_DIR / font).is_file()
    assert (site / SITE_VENDOR_DIR / jquery.relative.parents[1] / "LICENSE.txt").is_file()
    assert not (site / SITE_VENDOR_DIR / _vendored(BOOTSTRAP_CSS_URL).relative).exists()


def test_integrity_is_checked_then_dropped_with_crossorigin(tmp_path):
    jquery = _vendored(JQUERY_URL)
    site = _site(tmp_path, {"index.html": (
        f'<script src="{JQUERY_URL}" integrity="{_sri(jquery.local_path)}" '
        f'crossorigin="anonymous"></script><script src="{JQUERY_URL}" crossorigin></script>')})

    make_offline(site)

    assert (site / "index.html").read_text() == (
        f'<script src="static/vendor/{jquery.relative}"></script>'
        f'<script src="static/vendor/{jquery.relative}"></script>')


def test_integrity_other_than_the_vendored_file_raises(tmp_path):
    wrong = "sha384-" + base64.b64encode(b"\0" * 48).decode()
    site = _site(tmp_path, {"index.html": f'<script src="{JQUERY_URL}" integrity="{wrong}">'})

    with pytest.raises(ValueError, match="integrity"):
        make_offline(site)


@pytest.mark.parametrize("page", [
    f'<script src="{UNKNOWN_URL}"></script>',
    f"<div style=\"background: url('{UNKNOWN_URL}')\"></div>",
    f'<style>@import "{UNKNOWN_URL}";</style>',
    f"<script src={UNKNOWN_URL}></script>",
], ids=["script", "style-attribute", "import", "unquoted"])
def test_an_address_the_manifest_lacks_raises_naming_it_and_leaves_the_site_alone(tmp_path, page):
    site = _site(tmp_path, {"index.html": f'<link href="{BOOTSTRAP_CSS_URL}">', "b.html": page})

    with pytest.raises(ValueError) as raised:
        make_offline(site)

    message = str(raised.value)
    assert UNKNOWN_URL in message and str(MANIFEST_PATH) in message
    assert "python -m pixelflip.reports.vendor --update-sha256" in message
    assert (site / "index.html").read_text() == f'<link href="{BOOTSTRAP_CSS_URL}">'
    assert not (site / SITE_VENDOR_DIR).exists()


def test_a_site_file_the_site_lacks_raises(tmp_path):
    site = _site(tmp_path, {"index.html": f'<img src="{LOGO_URL}">'})
    (site / "static" / "images" / "logo-long.png").unlink()

    with pytest.raises(ValueError, match="static/images/logo-long.png"):
        make_offline(site)


def test_a_manifest_without_an_address_makes_its_pages_fail(tmp_path):
    without_jquery = dataclasses.replace(MANIFEST, packages=tuple(
        package for package in MANIFEST.packages if package.npm != "jquery"))
    site = _site(tmp_path, {"index.html": f'<script src="{JQUERY_URL}"></script>'})

    with pytest.raises(ValueError, match=JQUERY_URL.replace(".", r"\.")):
        make_offline(site, without_jquery)
