"""Great Expectations guards over the manifest that ``prepare_dataset`` writes.

Two sides, one Data Docs site:

- ``raw_manifest`` describes what the archive held (every row of the manifest) and flags its
  defects (quarantined members, empty files, unknown formats); it never fails the stage.
- ``clean_data`` (one row per used image) and ``clean_data_class_balance`` (one row per class)
  guard the cleaned data a model trains on; ``DataReport.success`` is theirs alone.

A Great Expectations suite is validated against one table, so the class-balance rule, which is
about counts per class, has its own small suite beside ``clean_data``. What each suite expects is
defined in ``suites``; this module runs them. Everything runs in an ephemeral context: nothing is
written outside ``docs_dir`` (no ``gx/`` project folder). Great Expectations is imported inside
``check_manifest`` because importing it takes seconds that other callers should not pay.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pixelflip.config.checks import check_integer
from pixelflip.data.suites import (
    class_balance_expectations,
    class_table,
    clean_expectations,
    raw_expectations,
    used_images_table,
)
from pixelflip.reports.offline import make_offline
from pixelflip.stage.files import atomic_path

RAW_SUITE = "raw_manifest"
CLEAN_SUITE = "clean_data"
CLASS_BALANCE_SUITE = "clean_data_class_balance"
_SITE_NAME = "local_site"
_RUN_NAME = "validate"
_SAMPLE_SIZE = 20
_TEXT_COLUMNS = ("path", "label", "sha256", "format", "status", "reason", "split")
_NUMBER_COLUMNS = ("bytes", "width", "height", "channels")


@dataclass(frozen=True)
class ExpectationReport:
    """Outcome of one side (raw or clean) of ``check_manifest``.

    Attributes:
        success: whether every expectation of this side passed.
        statistics: ``{"evaluated": n, "successful": n, "unsuccessful": n}``.
        results: one ``{"suite", "expectation", "column", "description", "success",
            "unexpected_count"}`` per expectation, suite by suite (grouped by column within a
            suite); ``column`` is None for table-level expectations, ``unexpected_count`` None
            where the expectation does not count rows or raised (e.g. on a missing column).
        docs_index: the Data Docs ``index.html`` to open in a browser.
        suites: the names of the suites this side ran.
    """

    success: bool
    statistics: dict[str, int]
    results: list[dict] = field(default_factory=list)
    docs_index: Path | None = None
    suites: tuple[str, ...] = ()

    @property
    def failed(self) -> list[dict]:
        """The results that did not pass."""
        return [result for result in self.results if not result["success"]]


@dataclass(frozen=True)
class DataReport:
    """Outcome of ``check_manifest``.

    Attributes:
        raw: the ``raw_manifest`` suite: what the archive held; informational only.
        clean: the ``clean_data`` and ``clean_data_class_balance`` suites.
        docs_index: the Data Docs ``index.html`` holding both sides.
    """

    raw: ExpectationReport
    clean: ExpectationReport
    docs_index: Path

    @property
    def success(self) -> bool:
        """Whether the cleaned data passed; the raw side never decides."""
        return self.clean.success

    @property
    def statistics(self) -> dict:
        """Both sides' counts, for ``metrics/data.json``: ``{"raw": ..., "clean": {"success",
        "evaluated", "successful", "unsuccessful"}}``."""
        return {"raw": self.raw.statistics,
                "clean": {"success": self.clean.success, **self.clean.statistics}}

    def failure_message(self) -> str:
        """One sentence naming the clean expectations that failed and where to see the rows."""
        failed = [f"{item['expectation']}({item['column']})" for item in self.clean.failed]
        return (f"the cleaned data breaks expectations {', '.join(failed)}; open "
                f"{self.docs_index} for the failing rows")


@dataclass(frozen=True)
class _SuiteRun:
    """One suite, the table it is validated against, and the columns naming unexpected rows."""

    name: str
    table: pd.DataFrame
    expectations: list
    index_columns: tuple[str, ...]


def check_manifest(
    manifest: pd.DataFrame,
    docs_dir: str | os.PathLike,
    *,
    classes: list[str],
    min_side: int,
    max_pixels: int,
    max_class_ratio: float,
) -> DataReport:
    """Validate a manifest, raw and cleaned, and build one Data Docs site; never raises on data.

    The raw side flags what the archive held (quarantined members, empty files, unknown
    formats). The clean side checks the used rows: decoded from a known format, sides at least
    ``min_side``, at most ``max_pixels`` pixels, label in ``classes``, every split non-empty,
    sha256 unique, splits disjoint by sha256, every class present, class sizes within
    ``max_class_ratio`` of each other.

    Args:
        manifest: the manifest table (as returned by ``read_manifest``, read with
            ``pd.read_csv`` or built in memory); columns ``MANIFEST_COLUMNS``.
        docs_dir: folder for the Data Docs site (replaced atomically).
        classes: the class names the used rows may carry; each needs at least one image.
        min_side: the smallest width and height allowed for used images, >= 1.
        max_pixels: the most pixels (width * height) allowed for a used image, >= 1.
        max_class_ratio: the largest allowed ratio of the biggest class's image count to any
            class's, >= 1.

    Returns:
        A ``DataReport``; ``success`` is the clean side's, and the caller decides what False
        means.

    Raises:
        ValueError: if ``classes`` is empty or repeats a name, or a bound is not a valid number.
    """
    classes = _checked_arguments(classes, min_side, max_pixels, max_class_ratio)
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    docs_dir = Path(docs_dir)
    manifest = _normalized(manifest)
    used_images = used_images_table(manifest)
    raw_runs = [_SuiteRun(RAW_SUITE, manifest, raw_expectations(), ("path", "reason"))]
    clean_runs = [
        _SuiteRun(
            CLEAN_SUITE,
            used_images,
            clean_expectations(classes=classes, min_side=min_side, max_pixels=max_pixels),
            ("path",),
        ),
        _SuiteRun(
            CLASS_BALANCE_SUITE,
            class_table(used_images, classes=classes),
            class_balance_expectations(max_class_ratio),
            ("label",),
        ),
    ]
    with atomic_path(docs_dir) as temporary_docs:
        context = gx.get_context(mode="ephemeral", project_config=_context_config(temporary_docs))
        data_source = context.data_sources.add_pandas("manifest")
        # One run identifier groups the three validations under one run in Data Docs.
        run_id = RunIdentifier(run_name=_RUN_NAME)
        raw = [_validate(context, data_source, run, run_id) for run in raw_runs]
        clean = [_validate(context, data_source, run, run_id) for run in clean_runs]
        context.build_data_docs()
        # GE's pages load their scripts and styles from CDNs; point them at local copies.
        make_offline(temporary_docs)

    docs_index = docs_dir / "index.html"
    return DataReport(
        raw=_side_report(raw, docs_index),
        clean=_side_report(clean, docs_index),
        docs_index=docs_index,
    )


def _checked_arguments(
    classes: list[str], min_side: int, max_pixels: int, max_class_ratio: float
) -> list[str]:
    """The class names as strings (as normalised labels are), after checking every argument."""
    check_integer("min_side", min_side, minimum=1)
    check_integer("max_pixels", max_pixels, minimum=1)
    is_number = isinstance(max_class_ratio, numbers.Real) and not isinstance(max_class_ratio, bool)
    if not is_number or not max_class_ratio >= 1:
        raise ValueError(
            f"max_class_ratio must be a number of at least 1, got {max_class_ratio!r}."
        )
    names = [str(name) for name in classes]
    if not names or len(set(names)) != len(names):
        raise ValueError(
            f"classes must be a non-empty list of distinct class names, got {list(classes)!r}."
        )
    return names


def _validate(context, data_source, run: _SuiteRun, run_id) -> tuple[str, object]:
    """``(suite name, validation result)``; the result also lands in the store Data Docs read."""
    import great_expectations as gx

    asset = data_source.add_dataframe_asset(run.name)
    batch_definition = asset.add_batch_definition_whole_dataframe(run.name)
    suite = context.suites.add(gx.ExpectationSuite(name=run.name, expectations=run.expectations))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=run.name, data=batch_definition, suite=suite)
    )
    result = validation.run(
        batch_parameters={"dataframe": run.table},
        run_id=run_id,
        # COMPLETE so that Data Docs name the rows behind each failure (by path, or label for
        # the class table), not just sample values; the index query would repeat every index.
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": list(run.index_columns),
            "partial_unexpected_count": _SAMPLE_SIZE,
            "return_unexpected_index_query": False,
        },
    )
    return run.name, result


def _side_report(named_results: list[tuple[str, object]], docs_index: Path) -> ExpectationReport:
    results = [
        {
            "suite": suite,
            "expectation": result.expectation_config.type,
            "column": result.expectation_config.kwargs.get("column"),
            "description": result.expectation_config.description,
            "success": bool(result.success),
            "unexpected_count": (result.result or {}).get("unexpected_count"),
        }
        for suite, validation_result in named_results
        for result in validation_result.results
    ]
    successful = sum(result["success"] for result in results)
    return ExpectationReport(
        success=successful == len(results),
        statistics={
            "evaluated": len(results),
            "successful": successful,
            "unsuccessful": len(results) - successful,
        },
        results=results,
        docs_index=docs_index,
        suites=tuple(suite for suite, _ in named_results),
    )


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
    class folders named ``0``..``9`` become integers (floats beside a blank cell), blank cells
    become NaN, or (with
    ``keep_default_na=False``) a width column holding blanks becomes text. Blank text counts as
    missing, so "not null" expectations see it.
    """
    manifest = manifest.copy()
    for column in _TEXT_COLUMNS:
        if column in manifest:
            values = manifest[column]
            if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
                values = values.astype("Int64")  # folder 0 read as 0.0 beside a blank cell
            values = values.astype("string")
            missing = values.isna() | (values.fillna("") == "")
            manifest[column] = values.astype(object).where(~missing, None)
    for column in _NUMBER_COLUMNS:
        if column in manifest:
            parsed = pd.to_numeric(manifest[column], errors="coerce")
            manifest[column] = parsed.astype("float64")
    return manifest
