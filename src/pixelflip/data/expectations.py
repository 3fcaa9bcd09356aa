"""Great Expectations guard over the manifest that ``prepare_dataset`` writes.

One suite, one validation run, one Data Docs build, in an ephemeral context: nothing is written
outside ``docs_dir`` (no ``gx/`` project folder). Great Expectations is imported inside
``check_manifest`` because importing it takes seconds that other callers should not pay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pixelflip.data.inspect import STATUSES, USED_STATUSES
from pixelflip.data.prepare import MANIFEST_COLUMNS, SPLITS
from pixelflip.io import atomic_path

SUITE_NAME = "manifest"
_SITE_NAME = "local_site"


@dataclass(frozen=True)
class ExpectationReport:
    """Outcome of ``check_manifest``.

    Attributes:
        success: whether every expectation passed.
        statistics: ``{"evaluated": n, "successful": n, "unsuccessful": n}``.
        results: one ``{"expectation", "column", "success", "unexpected_count"}`` per expectation,
            in suite order; ``column`` is None for table-level expectations.
        docs_index: the Data Docs ``index.html`` to open in a browser.
    """

    success: bool
    statistics: dict[str, int]
    results: list[dict] = field(default_factory=list)
    docs_index: Path | None = None

    @property
    def failed(self) -> list[dict]:
        """The results that did not pass."""
        return [result for result in self.results if not result["success"]]


def check_manifest(
    manifest: pd.DataFrame,
    docs_dir: str | os.PathLike,
    *,
    classes: list[str],
    min_side: int,
) -> ExpectationReport:
    """Validate a manifest and build Data Docs; never raises on failed expectations.

    Expectations: the columns are exactly ``MANIFEST_COLUMNS`` in order; status is one of
    kept/converted/quarantined/skipped; path is unique and not null; sha256 is not null, and
    unique among used (kept/converted) rows; for used rows, width and height are at least
    ``min_side``, label is set and one of ``classes``, and split is set and one of
    train/val/test.

    Args:
        manifest: the manifest table (as returned by ``read_manifest`` or built in memory).
        docs_dir: folder for the Data Docs site (replaced atomically).
        classes: the class names the used rows may carry.
        min_side: the smallest width and height allowed for used rows.

    Returns:
        An ``ExpectationReport``; the caller decides what ``success=False`` means.
    """
    import great_expectations as gx

    docs_dir = Path(docs_dir)
    manifest = _normalized(manifest)
    with atomic_path(docs_dir) as temporary_docs:
        context = gx.get_context(mode="ephemeral", project_config=_context_config(temporary_docs))
        batch_definition = (
            context.data_sources.add_pandas(SUITE_NAME)
            .add_dataframe_asset(SUITE_NAME)
            .add_batch_definition_whole_dataframe(SUITE_NAME)
        )
        suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
        for expectation in _expectations(classes, min_side):
            suite.add_expectation(expectation)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=SUITE_NAME, data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=SUITE_NAME,
                validation_definitions=[validation],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format="SUMMARY",
            )
        )
        outcome = checkpoint.run(batch_parameters={"dataframe": manifest})
        if not (temporary_docs / "index.html").is_file():
            context.build_data_docs()

    (validation_result,) = outcome.run_results.values()
    results = [
        {
            "expectation": result.expectation_config.type,
            "column": result.expectation_config.kwargs.get("column"),
            "success": bool(result.success),
            "unexpected_count": (result.result or {}).get("unexpected_count"),
        }
        for result in validation_result.results
    ]
    statistics = validation_result.statistics
    return ExpectationReport(
        success=bool(outcome.success),
        statistics={
            "evaluated": int(statistics["evaluated_expectations"]),
            "successful": int(statistics["successful_expectations"]),
            "unsuccessful": int(statistics["unsuccessful_expectations"]),
        },
        results=results,
        docs_index=docs_dir / "index.html",
    )


def _expectations(classes: list[str], min_side: int) -> list:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    used = Column("status").is_in(list(USED_STATUSES))
    classes = list(classes)
    return [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(MANIFEST_COLUMNS)),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
        gxe.ExpectColumnValuesToNotBeNull(column="path"),
        gxe.ExpectColumnValuesToBeUnique(column="path"),
        gxe.ExpectColumnValuesToNotBeNull(column="sha256"),
        gxe.ExpectColumnValuesToBeUnique(column="sha256", row_condition=used),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=min_side, row_condition=used),
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=min_side, row_condition=used),
        gxe.ExpectColumnValuesToNotBeNull(column="label", row_condition=used),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=classes, row_condition=used),
        gxe.ExpectColumnValuesToNotBeNull(column="split", row_condition=used),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS), row_condition=used),
    ]


def _context_config(docs_dir: Path):
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            _SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )


def _normalized(manifest: pd.DataFrame) -> pd.DataFrame:
    """Copy with text columns as strings or None and number columns as numbers or NaN.

    A CSV round trip changes types in ways that would fail expectations for the wrong reason:
    class folders named ``0``..``9`` become integers, blank cells become NaN, or (with
    ``keep_default_na=False``) a width column holding blanks becomes text. Blank text counts as
    missing, so "not null" expectations see it.
    """
    manifest = manifest.copy()
    for column in ("path", "label", "sha256", "format", "status", "reason", "split"):
        if column in manifest:
            values = manifest[column].astype("string")
            missing = values.isna() | (values.fillna("") == "")
            manifest[column] = values.astype(object).where(~missing, None)
    for column in ("bytes", "width", "height", "channels"):
        if column in manifest:
            numbers = pd.to_numeric(manifest[column], errors="coerce")
            manifest[column] = numbers.astype("float64")
    return manifest
