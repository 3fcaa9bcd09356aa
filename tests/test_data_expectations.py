"""Great Expectations checks over the manifest, and the Data Docs they build."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pixelflip.data.expectations import check_manifest
from pixelflip.data.prepare import MANIFEST_COLUMNS, read_manifest


def _row(path, label, status, sha, split="", width=28, height=28, reason=""):
    return {
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


def _good_manifest() -> pd.DataFrame:
    rows = [
        _row("0/a.png", "0", "kept", "s1", "train"),
        _row("0/b.png", "0", "converted", "s2", "val", reason="RGB to greyscale"),
        _row("1/c.png", "1", "kept", "s3", "test"),
        _row("1/d.png", "1", "quarantined", "s3", reason="duplicate of: 1/c.png"),
        _row("1/e.png", "1", "quarantined", "s4", width=3, height=3, reason="too small: 3x3 < 8"),
        _row("1/x.txt", "1", "skipped", "s5", width=None, height=None, reason="not an image: .txt"),
    ]
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "read",
    [
        pd.read_csv,  # class folders "0" and "1" come back as integers, blanks as NaN
        lambda path: pd.read_csv(path, keep_default_na=False),  # width with blanks is text
        read_manifest,
    ],
    ids=["default", "keep_default_na", "read_manifest"],
)
def test_good_manifest_read_back_from_csv_passes_and_builds_docs(in_tmp_cwd, read):
    _good_manifest().to_csv(in_tmp_cwd / "manifest.csv", index=False)
    manifest = read(in_tmp_cwd / "manifest.csv")

    docs_dir = in_tmp_cwd / "reports" / "data"
    report = check_manifest(manifest, docs_dir, classes=["0", "1"], min_side=8)

    assert report.success, report.failed
    assert report.statistics["unsuccessful"] == 0
    assert report.statistics["evaluated"] == len(report.results) >= 10
    checked = {(result["expectation"], result["column"]) for result in report.results}
    assert ("expect_column_values_to_be_unique", "sha256") in checked
    assert ("expect_table_columns_to_match_ordered_list", None) in checked
    assert report.docs_index == in_tmp_cwd / "reports" / "data" / "index.html"
    assert "<html" in report.docs_index.read_text().lower()
    assert sorted(path.name for path in in_tmp_cwd.iterdir()) == ["manifest.csv", "reports"]


def test_duplicated_kept_sha256_fails_and_names_the_expectation(in_tmp_cwd):
    manifest = _good_manifest()
    duplicate = manifest["path"] == "1/d.png"
    manifest.loc[duplicate, ["status", "reason", "split"]] = ["kept", "", "train"]

    report = check_manifest(manifest, in_tmp_cwd / "docs", classes=["0", "1"], min_side=8)

    assert report.success is False
    assert [(result["expectation"], result["column"]) for result in report.failed] == [
        ("expect_column_values_to_be_unique", "sha256")
    ]
    assert report.failed[0]["unexpected_count"] == 2
    assert report.statistics["unsuccessful"] == 1
    assert (in_tmp_cwd / "docs" / "index.html").is_file()


def test_used_rows_must_have_known_label_split_and_size(in_tmp_cwd):
    manifest = _good_manifest()
    manifest.loc[0, "label"] = "7"
    manifest.loc[1, "split"] = ""
    manifest.loc[2, "width"] = 4
    manifest.loc[5, "status"] = "lost"
    manifest = manifest[[column for column in MANIFEST_COLUMNS if column != "format"]]

    report = check_manifest(manifest, in_tmp_cwd / "docs", classes=["0", "1"], min_side=8)

    failed = {(result["expectation"], result["column"]) for result in report.failed}
    assert failed == {
        ("expect_table_columns_to_match_ordered_list", None),
        ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_values_to_be_in_set", "label"),
        ("expect_column_values_to_not_be_null", "split"),
        ("expect_column_values_to_be_between", "width"),
    }
    assert not report.success
    assert isinstance(report.docs_index, Path) and report.docs_index.is_file()
