"""Great Expectations checks over the manifest (raw and clean suites) and their Data Docs."""

from __future__ import annotations

import pandas as pd
import pytest
from support.browser import headless_chromium, wait_for
from support.offline_pages import open_offline, page_errors, remote_requests

from pixelflip.data.expectations import CLASS_BALANCE_SUITE, CLEAN_SUITE, RAW_SUITE, check_manifest
from pixelflip.data.prepare import MANIFEST_COLUMNS, read_manifest
from pixelflip.reports.offline import remote_loads, site_pages

CLASSES = ["0", "1"]
BOUNDS = {"min_side": 8, "max_pixels": 10_000, "max_class_ratio": 3.0}
QUARANTINE_RULE = (RAW_SUITE, "expect_column_values_to_not_be_in_set", "status")


def _row(path, label, status, sha, split="", width=28, height=28, reason="", **overrides):
    row = {
        "path": path,
        "label": label,
        "bytes": 100,
        "sha256": sha,
        "format": "png",
        "width": width,
        "height": height,
        "channels": 1,
        "status": status,
        "reason": reason,
        "split": split,
    }
    return {**row, **overrides}


def _good_manifest() -> pd.DataFrame:
    """Class "0" has 2 used images, class "1" one; one image per split; two quarantined rows.

    The member outside any class folder has a blank label, so a plain ``pd.read_csv`` reads the
    label column as floats.
    """
    rows = [
        _row("0/a.png", "0", "kept", "s1", "train"),
        _row("0/b.png", "0", "converted", "s2", "val", reason="RGB to greyscale"),
        _row("1/c.png", "1", "kept", "s3", "test"),
        _row("1/d.png", "1", "quarantined", "s3", reason="duplicate of: 1/c.png"),
        _row("1/e.png", "1", "quarantined", "s4", width=3, height=3, reason="too small: 3x3 < 8"),
        _row("1/x.txt", "1", "skipped", "s5", width=None, height=None, reason="not an image: .txt"),
        _row(
            "notes.txt",
            "",
            "skipped",
            "s6",
            width=None,
            height=None,
            reason="not in a class folder",
        ),
    ]
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


def _failed(report_side) -> set[tuple]:
    return {(item["suite"], item["expectation"], item["column"]) for item in report_side.failed}


@pytest.fixture(scope="module")
def good_report(tmp_path_factory):
    docs_dir = tmp_path_factory.mktemp("good") / "reports" / "data"
    return check_manifest(_good_manifest(), docs_dir, classes=CLASSES, **BOUNDS)


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_good_manifest_passes_clean_side_and_raw_flags_only_quarantined_rows(good_report):
    assert good_report.success is True
    assert good_report.clean.success, good_report.clean.failed
    assert good_report.clean.suites == (CLEAN_SUITE, CLASS_BALANCE_SUITE)
    assert good_report.raw.suites == (RAW_SUITE,)
    assert _failed(good_report.raw) == {QUARANTINE_RULE}
    (quarantine,) = good_report.raw.failed
    assert quarantine["unexpected_count"] == 2
    assert "quarantined" in quarantine["description"]
    for side in (good_report.raw, good_report.clean):
        assert side.statistics["evaluated"] == len(side.results)
        assert side.statistics["unsuccessful"] == len(side.failed)
        assert side.docs_index == good_report.docs_index
    checked = {
        (item["suite"], item["expectation"], item["column"])
        for item in good_report.raw.results + good_report.clean.results
    }
    assert {
        (RAW_SUITE, "expect_table_columns_to_match_ordered_list", None),
        (RAW_SUITE, "expect_column_values_to_be_unique", "path"),
        (CLEAN_SUITE, "expect_column_values_to_be_unique", "sha256"),
        (CLEAN_SUITE, "expect_column_values_to_be_between", "splits_holding_sha256"),
        (CLASS_BALANCE_SUITE, "expect_column_values_to_be_between", "largest_class_over_this"),
    } <= checked


def test_data_docs_hold_both_suites_and_list_quarantined_paths(good_report):
    docs_dir = good_report.docs_index.parent
    index_html = good_report.docs_index.read_text()
    for suite in (RAW_SUITE, CLEAN_SUITE, CLASS_BALANCE_SUITE):
        assert suite in index_html
    (raw_page,) = (docs_dir / "validations" / RAW_SUITE).rglob("*.html")
    assert "1/d.png" in raw_page.read_text() and "1/e.png" in raw_page.read_text()
    # Only the site itself is there: the atomic build left no temporary folder beside it.
    assert [path.name for path in docs_dir.parent.iterdir()] == ["data"]


# The Data Docs index fills its validation table with bootstrap-table (jQuery); offline, without
# the vendored scripts, the table stays empty.
_INDEX_ROWS_JS = """
return [...document.querySelectorAll('table.ge-index-page-validation-results-table tbody tr')]
  .filter(row => row.offsetHeight > 0).map(row => row.innerText);
"""
# Loaded, not merely declared: the check and cross icons of every result are this font's glyphs.
_ICON_FONT_LOADED_JS = """
return [...document.fonts].some(font => font.family.includes('Font Awesome 6 Free')
                                       && font.weight === '900' && font.status === 'loaded');
"""
# GE's favicon.j2 writes validation pages' favicon path one "../" short, online too.
_GE_FAVICON_BUG = ("favicon.ico",)


def test_data_docs_load_nothing_remote(good_report):
    pages = site_pages(good_report.docs_index.parent)
    assert good_report.docs_index in pages and len(pages) >= 7
    assert {page: remote_loads(page.read_text(), page.suffix) for page in pages} == {
        page: [] for page in pages}


def test_data_docs_render_offline_from_disk(good_report):
    docs_dir = good_report.docs_index.parent
    (raw_page,) = (docs_dir / "validations" / RAW_SUITE).rglob("*.html")
    with headless_chromium() as driver:
        open_offline(driver, good_report.docs_index)
        rows = wait_for(driver, lambda driver: driver.execute_script(_INDEX_ROWS_JS),
                        "the index's validation results table stayed empty")
        assert len(rows) == 3
        assert {suite for row in rows for suite in (RAW_SUITE, CLEAN_SUITE, CLASS_BALANCE_SUITE)
                if suite in row.split()} == {RAW_SUITE, CLEAN_SUITE, CLASS_BALANCE_SUITE}
        wait_for(driver, lambda driver: driver.execute_script(_ICON_FONT_LOADED_JS),
                 "the status icons' font did not load")
        assert page_errors(driver) == [] and remote_requests(driver) == []

        open_offline(driver, raw_page)
        wait_for(driver, lambda driver: driver.execute_script(_ICON_FONT_LOADED_JS),
                 "the validation page's icon font did not load")
        quarantined = driver.find_element("xpath", "//*[contains(text(), '1/d.png')]")
        assert quarantined.is_displayed()
        # Bootstrap's .pl-5 is 3rem: the style sheet loaded.
        assert driver.execute_script(
            "return getComputedStyle(document.querySelector('.pl-5')).paddingLeft") == "48px"
        assert page_errors(driver, tolerated=_GE_FAVICON_BUG) == []
        assert remote_requests(driver) == []


@pytest.mark.parametrize(
    "read",
    [
        pd.read_csv,  # class folders "0" and "1" come back as 0.0 and 1.0, blanks as NaN
        lambda path: pd.read_csv(path, keep_default_na=False),  # width with blanks is text
        read_manifest,
    ],
    ids=["default", "keep_default_na", "read_manifest"],
)
def test_manifest_read_back_from_csv_passes_and_writes_only_docs(in_tmp_cwd, read, good_report):
    _good_manifest().to_csv(in_tmp_cwd / "manifest.csv", index=False)
    manifest = read(in_tmp_cwd / "manifest.csv")

    report = check_manifest(manifest, in_tmp_cwd / "reports" / "data", classes=CLASSES, **BOUNDS)

    assert report.success, report.clean.failed
    assert _failed(report.raw) == {QUARANTINE_RULE}
    assert report.clean.statistics == good_report.clean.statistics
    assert report.docs_index == in_tmp_cwd / "reports" / "data" / "index.html"
    assert "<html" in report.docs_index.read_text().lower()
    assert sorted(path.name for path in in_tmp_cwd.iterdir()) == ["manifest.csv", "reports"]
    assert [path.name for path in (in_tmp_cwd / "reports").iterdir()] == ["data"]


def _set(path: str, **values):
    """A manifest edit: give the row at ``path`` these values."""

    def edit(manifest: pd.DataFrame) -> None:
        row = manifest["path"] == path
        for column, value in values.items():
            manifest.loc[row, column] = value

    return edit


_SHA_UNIQUE = (CLEAN_SUITE, "expect_column_values_to_be_unique", "sha256")


@pytest.mark.parametrize(
    ("edit", "bounds", "expected_failures"),
    [
        pytest.param(
            _set("1/d.png", status="kept", reason="", split="test"),
            {},
            {_SHA_UNIQUE},
            id="duplicate-sha256-in-one-split",
        ),
        pytest.param(
            _set("1/d.png", status="kept", reason="", split="train"),
            {},
            {
                _SHA_UNIQUE,
                (CLEAN_SUITE, "expect_column_values_to_be_between", "splits_holding_sha256"),
            },
            id="same-sha256-in-train-and-test",
        ),
        pytest.param(
            _set("0/a.png", label="7"),
            {},
            {(CLEAN_SUITE, "expect_column_values_to_be_in_set", "label")},
            id="label-outside-classes",
        ),
        pytest.param(
            _set("1/c.png", width=4),
            {},
            {(CLEAN_SUITE, "expect_column_values_to_be_between", "width")},
            id="too-small",
        ),
        pytest.param(
            _set("0/a.png", width=200, height=200),
            {},
            {(CLEAN_SUITE, "expect_column_values_to_be_between", "pixels")},
            id="too-many-pixels",
        ),
        pytest.param(
            _set("0/b.png", format="unknown"),
            {},
            {(CLEAN_SUITE, "expect_column_values_to_be_in_set", "format")},
            id="unknown-format",
        ),
        pytest.param(
            _set("0/b.png", height=None),
            {},
            {(CLEAN_SUITE, "expect_column_values_to_not_be_null", "height")},
            id="not-decoded",
        ),
        pytest.param(
            _set("0/b.png", split="train"),
            {},
            {(CLEAN_SUITE, "expect_column_distinct_values_to_contain_set", "split")},
            id="empty-val-split",
        ),
        pytest.param(
            None,
            {"max_class_ratio": 1.5},  # class "0" has twice the images of class "1"
            {
                (
                    CLASS_BALANCE_SUITE,
                    "expect_column_values_to_be_between",
                    "largest_class_over_this",
                )
            },
            id="class-ratio-beyond-max",
        ),
        pytest.param(
            None,
            {"classes": ["0", "1", "2"]},
            {(CLASS_BALANCE_SUITE, "expect_column_values_to_be_between", "images")},
            id="class-without-images",
        ),
    ],
)
def test_each_broken_clean_rule_fails_and_names_its_expectation(
    tmp_path, edit, bounds, expected_failures
):
    manifest = _good_manifest()
    if edit is not None:
        edit(manifest)
    arguments = {"classes": CLASSES, **BOUNDS, **bounds}

    report = check_manifest(manifest, tmp_path / "docs", **arguments)

    assert report.success is False
    assert _failed(report.clean) == expected_failures
    assert report.clean.statistics["unsuccessful"] == len(expected_failures)
    if _SHA_UNIQUE in expected_failures:
        (unique,) = [item for item in report.clean.failed if item["column"] == "sha256"]
        assert unique["unexpected_count"] == 2
    assert report.docs_index.is_file()


def test_raw_defects_alone_never_fail_the_check(tmp_path):
    manifest = _good_manifest()
    _set("1/e.png", bytes=0, format="unknown", width=None, height=None, reason="empty file")(
        manifest
    )
    _set("1/x.txt", reason="", split="train")(manifest)

    report = check_manifest(manifest, tmp_path / "docs", classes=CLASSES, **BOUNDS)

    assert report.success is True
    assert _failed(report.raw) == {
        QUARANTINE_RULE,
        (RAW_SUITE, "expect_column_values_to_be_between", "bytes"),
        (RAW_SUITE, "expect_column_values_to_be_in_set", "format"),
        (RAW_SUITE, "expect_column_values_to_not_be_null", "reason"),
        (RAW_SUITE, "expect_column_values_to_be_null", "split"),
    }


def test_missing_manifest_column_fails_both_sides_by_name(tmp_path):
    manifest = _good_manifest().drop(columns=["format"])
    manifest.loc[5, "status"] = "lost"

    report = check_manifest(manifest, tmp_path / "docs", classes=CLASSES, **BOUNDS)

    assert report.success is False
    assert {
        (RAW_SUITE, "expect_table_columns_to_match_ordered_list", None),
        (RAW_SUITE, "expect_column_values_to_be_in_set", "status"),
    } <= _failed(report.raw)
    assert _failed(report.clean) == {
        (CLEAN_SUITE, "expect_column_values_to_not_be_null", "format"),
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"classes": []}, "classes"),
        ({"classes": ["0", "0"]}, "classes"),
        ({"min_side": 0}, "min_side"),
        ({"max_pixels": 2.5}, "max_pixels"),
        ({"max_class_ratio": 0.5}, "max_class_ratio"),
        ({"max_class_ratio": True}, "max_class_ratio"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        check_manifest(
            _good_manifest(), tmp_path / "docs", **{"classes": CLASSES, **BOUNDS, **arguments}
        )
    assert not (tmp_path / "docs").exists()
