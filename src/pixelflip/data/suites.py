"""What the Great Expectations suites expect, and the tables they are validated against.

``expectations.check_manifest`` runs three suites:

- ``raw_expectations`` over the whole manifest (what the archive held);
- ``clean_expectations`` over ``used_images_table`` (one row per used image);
- ``class_balance_expectations`` over ``class_table`` (one row per class).

Great Expectations is imported inside the suite builders because importing it takes seconds that
other callers should not pay.
"""

from __future__ import annotations

import pandas as pd

from pixelflip.data.headers import IMAGE_FORMATS
from pixelflip.data.inspect import STATUSES, USED_STATUSES
from pixelflip.data.prepare import MANIFEST_COLUMNS, SPLITS


def raw_expectations() -> list:
    """The ``raw_manifest`` suite's expectations, over every row of the manifest.

    They describe what the archive held (columns, unique paths, known statuses) and flag its
    defects: unreadable, empty or unknown-format image files, excluded members without a reason
    or with a split, and any quarantined member.

    Returns:
        A list of ``great_expectations.expectations.Expectation``.
    """
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    image_files = Column("status").is_in([status for status in STATUSES if status != "skipped"])
    excluded = Column("status").is_in([s for s in STATUSES if s not in USED_STATUSES])
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1, description="The archive held at least one member."
        ),
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(MANIFEST_COLUMNS)),
        *(gxe.ExpectColumnValuesToNotBeNull(column=column) for column in ("path", "status")),
        # A null sha256 on an image file means the member could not even be read (skipped
        # files outside the chosen classes or subset are deliberately never read).
        gxe.ExpectColumnValuesToNotBeNull(
            column="sha256",
            row_condition=image_files,
            description="Every image file could be read from the archive (it has a sha256).",
        ),
        gxe.ExpectColumnValuesToBeUnique(column="path"),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
        gxe.ExpectColumnValuesToBeBetween(
            column="bytes",
            min_value=1,
            row_condition=image_files,
            description="Every image file (status other than skipped) is non-empty.",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="format",
            value_set=list(IMAGE_FORMATS),
            row_condition=image_files,
            description=f"Every image file holds a known format: {', '.join(IMAGE_FORMATS)}.",
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="reason",
            row_condition=excluded,
            description="Every quarantined or skipped member says why.",
        ),
        gxe.ExpectColumnValuesToBeNull(
            column="split",
            row_condition=excluded,
            description="Only used (kept or converted) images are assigned to a split.",
        ),
        gxe.ExpectColumnValuesToNotBeInSet(
            column="status",
            value_set=["quarantined"],
            description=(
                "No member is quarantined. Failing, the table lists the quarantined paths with "
                "their reasons (manifest.csv has them all)."
            ),
        ),
    ]


def clean_expectations(*, classes: list[str], min_side: int, max_pixels: int) -> list:
    """The ``clean_data`` suite's expectations, over ``used_images_table``.

    Args:
        classes: the class names a used image's label may be.
        min_side: the smallest width and height allowed, >= 1.
        max_pixels: the most pixels (width * height) allowed, >= 1.

    Returns:
        A list of ``great_expectations.expectations.Expectation``: no nulls, a known format,
        size bounds, labels in ``classes``, every split non-empty, sha256 unique, splits
        disjoint by sha256.
    """
    import great_expectations.expectations as gxe

    # A null width or height means the image was never decoded; a null format, label, split or
    # sha256 would slip past the set and uniqueness rules below, which skip nulls.
    not_null = ("format", "width", "height", "label", "split", "sha256")
    return [
        *(gxe.ExpectColumnValuesToNotBeNull(column=column) for column in not_null),
        gxe.ExpectColumnValuesToBeInSet(
            column="format",
            value_set=list(IMAGE_FORMATS),
            description="Every image was decoded from a known format.",
        ),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=min_side,
                description=f"Every image's {column} is at least {min_side} (validate.min_side).",
            )
            for column in ("width", "height")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="pixels",
            max_value=max_pixels,
            description=f"Every image has at most {max_pixels} pixels (validate.max_pixels).",
        ),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=classes),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="split",
            value_set=list(SPLITS),
            description=f"Every split ({', '.join(SPLITS)}) holds at least one image.",
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="sha256", description="No two used images have the same content (sha256)."
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="splits_holding_sha256",
            min_value=1,
            max_value=1,
            description="Splits are disjoint by sha256: each image's content is in one split only.",
        ),
    ]


def class_balance_expectations(max_class_ratio: float) -> list:
    """The ``clean_data_class_balance`` suite's expectations, over ``class_table``.

    Args:
        max_class_ratio: the largest allowed ratio of the biggest class's image count to any
            class's, >= 1.

    Returns:
        A list of ``great_expectations.expectations.Expectation``: every class has an image and
        no class is more than ``max_class_ratio`` times smaller than the largest.
    """
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="images", min_value=1, description="Every class has at least one image."
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="largest_class_over_this",
            max_value=max_class_ratio,
            description=(
                f"Classes are balanced: the largest class has at most {max_class_ratio:g} times "
                f"the images of each class (validate.max_class_ratio)."
            ),
        ),
    ]


def used_images_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """The used (kept/converted) rows, plus derived ``pixels`` and ``splits_holding_sha256``.

    A manifest column that is missing comes back all null, so the clean side's "not null"
    expectations name it instead of every expectation on it raising.

    Args:
        manifest: the normalised manifest (text columns as strings or None, number columns as
            floats).

    Returns:
        A new table, index 0..n-1, with the columns ``MANIFEST_COLUMNS`` then ``pixels``
        (width * height) and ``splits_holding_sha256`` (how many splits hold that row's sha256;
        null where the row has no split).
    """
    table = manifest.reindex(columns=list(MANIFEST_COLUMNS))
    used = table[table["status"].isin(USED_STATUSES)].reset_index(drop=True)
    used["pixels"] = used["width"] * used["height"]
    splits_per_sha256 = used.groupby("sha256")["split"].transform("nunique")
    # Rows without a split are already caught by "split not null"; leaving them out here keeps
    # this expectation about overlap only.
    used["splits_holding_sha256"] = splits_per_sha256.where(used["split"].notna())
    return used


def class_table(used_images: pd.DataFrame, *, classes: list[str]) -> pd.DataFrame:
    """One row per class: ``label``, ``images`` and ``largest_class_over_this``.

    The ratio is null for a class with no images, which the ``images >= 1`` expectation reports.

    Args:
        used_images: the table ``used_images_table`` returns.
        classes: the class names, in the order the rows should take; labels outside them are
            not counted.

    Returns:
        A table of ``len(classes)`` rows: ``images`` is int64, ``largest_class_over_this`` the
        largest class's count over this class's, float64.
    """
    images = used_images["label"].value_counts().reindex(classes, fill_value=0).astype("int64")
    ratio = images.max() / images.where(images > 0).astype("float64")
    return pd.DataFrame(
        {"label": classes, "images": images.to_numpy(), "largest_class_over_this": ratio.to_numpy()}
    )
