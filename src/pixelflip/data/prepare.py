"""The ``validate`` stage's logic: raw archive in, cleaned, resized and split arrays out.

``prepare_dataset`` reads the archive member by member (never extracting it), records every
member's status in ``manifest.csv``, drops exact duplicates, resizes usable images and writes a
stratified train/val/test split as ``.npy`` arrays that loaders memory-map.

Memory stays flat in the number of images: workers (``scan``) decode and resize a few chunks
at a time, resized images are appended to a staging file on disk, and each split file is then
written image by image from it. Plain file writes, not memory maps: pages of a written memory
map count towards the process's memory until the kernel evicts them, so 25,000 photos would
look like 1.2 GB of RSS. Which folders are classes (``classes``) and the per-class
subset (``max_images_per_class``) are decided here, not at download, so a downloaded archive is
kept exactly as it came.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pixelflip.checks import check_integer
from pixelflip.data.archive import (
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    ArchiveMember,
    read_class_members,
)
from pixelflip.data.inspect import (
    COLOR_MODES,
    STATUSES,
    USED_STATUSES,
)
from pixelflip.data.scan import InspectionSettings, scan_members
from pixelflip.data.selection import select_members
from pixelflip.io import atomic_path

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = (
    "path", "label", "bytes", "sha256", "format", "width", "height", "channels",
    "status", "reason", "split",
)  # fmt: skip
_STRING_COLUMNS = ("path", "label", "sha256", "format", "status", "reason", "split")
_INTEGER_COLUMNS = ("bytes", "width", "height", "channels")
DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class PreparedDataset:
    """What ``prepare_dataset`` wrote.

    Attributes:
        out_dir: the folder holding manifest.csv, classes.json and the split arrays.
        classes: class names; a label is an index into this list.
        split_sizes: number of images per split, ``{"train": n, "val": n, "test": n}``.
        status_counts: number of archive members per status (all four statuses present).
        reason_counts: number of members per reason kind (the text before ``":"``).
        image_shape: (height, width, channels) of every stored image.
    """

    out_dir: Path
    classes: list[str]
    split_sizes: dict[str, int]
    status_counts: dict[str, int]
    reason_counts: dict[str, int]
    image_shape: tuple[int, int, int]


def prepare_dataset(
    archive_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_size: int,
    color_mode: str,
    val_fraction: float,
    test_fraction: float,
    min_side: int,
    random_state: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    classes: dict[str, str] | None = None,
    max_images_per_class: int | None = None,
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO,
    max_uncompressed_bytes: float = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    workers: int | None = None,
    progress: bool = True,
) -> PreparedDataset:
    """Inspect, clean, resize and split a raw class-folder archive.

    Writes ``out_dir`` atomically (built beside it, renamed at the end) with:
    ``manifest.csv`` (one row per archive member, columns ``MANIFEST_COLUMNS``),
    ``classes.json`` (list of class names) and, for each split in train/val/test,
    ``<split>_images.npy`` uint8 (N, image_size, image_size, C) with C = 1 for grayscale or 3
    for rgb, and ``<split>_labels.npy`` int64 (N,) with values in 0..K-1.

    Args:
        archive_path: the raw zip of class folders.
        out_dir: output folder (replaced if it exists).
        image_size: side in pixels of the square images stored.
        color_mode: ``"grayscale"`` or ``"rgb"``.
        val_fraction: fraction of the usable images for validation, in (0, 1).
        test_fraction: fraction of the usable images for test, in (0, 1); with val_fraction
            below 1 in total.
        min_side: images with a shorter side below this are quarantined.
        random_state: seed of the stratified split and of the per-class subset.
        max_pixels: images with more pixels (decompression bombs) are quarantined undecoded.
        classes: ``{folder name: label}``: only these class folders are used, under these
            labels (several folders may share a label); None uses every folder as its class.
        max_images_per_class: a seeded random subset of this many image files per class is
            inspected; the others are ``skipped``. None inspects all.
        max_compression_ratio, max_uncompressed_bytes: zip-bomb limits, see
            ``read_class_members``.
        workers: processes inspecting images; None = every core.
        progress: show a progress bar while inspecting.

    Raises:
        ValueError: for bad arguments, a ``classes`` folder the archive lacks, fewer than 2
            classes with usable images, or a split that would be empty or cannot be
            stratified. ``UnsafeArchiveError`` (a ValueError) for a hostile archive.
    """
    _check_arguments(image_size, color_mode, val_fraction, test_fraction, min_side)
    if max_images_per_class is not None:
        check_integer("max_images_per_class", max_images_per_class, minimum=1)
    archive_path, out_dir = Path(archive_path), Path(out_dir)
    members = read_class_members(
        archive_path,
        max_compression_ratio=max_compression_ratio,
        max_uncompressed_bytes=max_uncompressed_bytes,
    )
    members, excluded = select_members(
        archive_path, members, classes, max_images_per_class, random_state
    )
    channels = 1 if color_mode == "grayscale" else 3
    image_shape = (image_size, image_size, channels)
    settings = InspectionSettings(image_size, color_mode, min_side, max_pixels)

    with atomic_path(out_dir) as temporary:
        temporary.mkdir()
        staging_path = temporary / "staging_images.bin"
        with open(staging_path, "wb") as staging:
            rows, used_rows = _inspect_members(
                archive_path, members, staging, settings, workers, progress
            )
        classes = sorted({rows[index]["label"] for index in used_rows})
        if len(classes) < 2:
            manifest = pd.DataFrame(rows + excluded, columns=list(MANIFEST_COLUMNS))
            raise ValueError(_too_few_classes_message(archive_path, classes, manifest))
        class_index = {name: index for index, name in enumerate(classes)}
        labels = np.array([class_index[rows[index]["label"]] for index in used_rows], np.int64)
        split_positions = _stratified_split(labels, val_fraction, test_fraction, random_state)

        for split, positions in split_positions.items():
            for position in positions:
                rows[used_rows[position]]["split"] = split
            _write_split(temporary, split, staging_path, image_shape, positions, labels[positions])
        staging_path.unlink()

        # Both lists are in member-path order; merging keeps the manifest in archive order.
        all_rows = sorted(rows + excluded, key=lambda row: row["path"])
        manifest = _with_manifest_dtypes(pd.DataFrame(all_rows, columns=list(MANIFEST_COLUMNS)))
        manifest.to_csv(temporary / "manifest.csv", index=False)
        (temporary / "classes.json").write_text(json.dumps(classes, indent=2) + "\n")

    summary = summarize_manifest(manifest)
    return PreparedDataset(
        out_dir=out_dir,
        classes=classes,
        split_sizes={split: len(positions) for split, positions in split_positions.items()},
        status_counts=summary["status_counts"],
        reason_counts=summary["reason_counts"],
        image_shape=image_shape,
    )


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``manifest.csv`` (or the folder holding it) with the types ``prepare_dataset`` wrote.

    Class folder names stay strings (``"0"`` does not become the integer 0), missing numbers
    are ``<NA>`` and empty reasons and splits are ``""``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    manifest = pd.read_csv(path, dtype={column: "string" for column in _STRING_COLUMNS})
    return _with_manifest_dtypes(manifest)


def summarize_manifest(manifest: pd.DataFrame) -> dict:
    """Counts for ``metrics/data.json``.

    Returns:
        ``{"num_files": n, "status_counts": {status: n} (all four statuses),
        "reason_counts": {reason kind: n} (text before ":"), "class_counts": {class: usable
        images}, "split_counts": {split: n}}``.
    """
    status = manifest["status"].astype("string").fillna("")
    reasons = manifest["reason"].astype("string").fillna("")
    splits = manifest["split"].astype("string").fillna("")
    used = status.isin(USED_STATUSES)
    reason_kinds = reasons[reasons != ""].str.split(":", n=1).str[0].str.strip()
    status_counts = {name: int((status == name).sum()) for name in STATUSES}
    return {
        "num_files": int(len(manifest)),
        "status_counts": status_counts,
        "reason_counts": dict(sorted(Counter(reason_kinds.tolist()).items())),
        "class_counts": dict(sorted(Counter(manifest.loc[used, "label"].astype(str)).items())),
        "split_counts": {name: int((splits[used] == name).sum()) for name in SPLITS},
    }


def _check_arguments(
    image_size: int, color_mode: str, val_fraction: float, test_fraction: float, min_side: int
) -> None:
    check_integer("image_size", image_size, minimum=1)
    check_integer("min_side", min_side, minimum=1)
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {list(COLOR_MODES)}, got {color_mode!r}.")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1 to leave training images, got "
            f"{val_fraction} + {test_fraction}."
        )


def _inspect_members(
    archive_path: Path,
    members: list[ArchiveMember],
    staging: BinaryIO,
    settings: InspectionSettings,
    workers: int | None,
    progress: bool,
) -> tuple[list[dict], list[int]]:
    """Inspect every member, appending usable images, resized, to the ``staging`` file in order.

    Returns:
        ``(rows, used_rows)``: one manifest row per member, and for each image stored in
        ``staging`` (position i) the index of its row.
    """
    rows, used_rows = [], []
    first_path_of: dict[str, str] = {}
    stream = scan_members(archive_path, members, settings, workers=workers)
    for member, record, image in tqdm(
        stream, total=len(members), desc="inspect", unit="file", disable=not progress
    ):
        row = {"path": member.path, "label": member.label, **record, "split": ""}
        if not member.label and record["status"] != "skipped":
            row.update(status="skipped", reason="not in a class folder")
            image = None
        elif image is not None:
            # Members arrive sorted by path, so the first copy seen is the one kept.
            if record["sha256"] in first_path_of:
                original = first_path_of[record["sha256"]]
                row.update(status="quarantined", reason=f"duplicate of: {original}")
                image = None
            else:
                first_path_of[record["sha256"]] = member.path
        if image is not None:
            staging.write(np.ascontiguousarray(image).tobytes())
            used_rows.append(len(rows))
        rows.append(row)
    return rows, used_rows


def _write_split(
    folder: Path,
    split: str,
    staging_path: Path,
    image_shape: tuple[int, int, int],
    positions: np.ndarray,
    labels: np.ndarray,
) -> None:
    """Write ``<split>_images.npy`` (the staged images at ``positions``) and the labels."""
    image_bytes = int(np.prod(image_shape))
    header = {"descr": "|u1", "fortran_order": False, "shape": (len(positions), *image_shape)}
    with open(staging_path, "rb") as staging, open(folder / f"{split}_images.npy", "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for position in positions:
            out.write(os.pread(staging.fileno(), image_bytes, int(position) * image_bytes))
    np.save(folder / f"{split}_labels.npy", labels)


def _stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, random_state: int
) -> dict[str, np.ndarray]:
    """Positions into ``labels`` for each split, each sorted (so arrays keep archive order).

    Held-out sizes are rounded up (test first, then val from the rest), and each split takes
    every class in proportion, the rounding remainders going to the classes with the largest
    fractions. Written with NumPy rather than scikit-learn's ``train_test_split`` because
    importing scikit-learn costs two seconds, as long as validating two thousand photos.
    """
    count = len(labels)
    test_size = math.ceil(test_fraction * count)
    val_size = math.ceil(val_fraction / (1.0 - test_fraction) * (count - test_size))
    sizes = {"test": test_size, "val": val_size, "train": count - test_size - val_size}
    for split, size in sizes.items():
        if size < 1:
            raise ValueError(
                f"The {split} split would be empty with {count} usable images, "
                f"val_fraction={val_fraction} and test_fraction={test_fraction}; add more images "
                f"or use smaller fractions."
            )
    classes, class_counts = np.unique(labels, return_counts=True)
    too_small = {split: size for split, size in sizes.items() if size < len(classes)}
    if too_small or class_counts.min() < len(SPLITS):
        raise ValueError(
            f"Cannot make a stratified train/val/test split of {count} usable images in "
            f"{len(classes)} classes (smallest class: {class_counts.min()} images; split sizes "
            f"{sizes}) with val_fraction={val_fraction} and test_fraction={test_fraction}; add "
            "more images per class or change the fractions so every split can hold each class."
        )
    rng = np.random.default_rng(random_state)
    members = {label: rng.permutation(np.flatnonzero(labels == label)) for label in classes}
    remaining = class_counts.copy()
    taken = np.zeros_like(class_counts)
    splits = {}
    for split in ("test", "val"):
        shares = _proportional_shares(remaining, sizes[split])
        splits[split] = np.concatenate(
            [members[label][taken[i] : taken[i] + shares[i]] for i, label in enumerate(classes)]
        )
        taken += shares
        remaining -= shares
    splits["train"] = np.concatenate(
        [members[label][taken[i] :] for i, label in enumerate(classes)]
    )
    return {split: np.sort(splits[split]) for split in SPLITS}


def _proportional_shares(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts``, by largest remainder."""
    exact = counts * total / counts.sum()
    shares = np.floor(exact).astype(np.int64)
    # Stable order: ties go to the earlier class, so the split never depends on sort quirks.
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[: total - shares.sum()]] += 1
    return shares


def _too_few_classes_message(archive_path: Path, classes: list[str], manifest: pd.DataFrame) -> str:
    summary = summarize_manifest(manifest)
    found = ", ".join(f"{name}: {summary['class_counts'][name]}" for name in classes) or "none"
    return (
        f"Only {len(classes)} class(es) in {archive_path} have usable images ({found}); at least "
        f"2 are needed. Status counts: {summary['status_counts']}; reasons: "
        f"{summary['reason_counts']}. Put images of each class in its own folder."
    )


def _with_manifest_dtypes(manifest: pd.DataFrame) -> pd.DataFrame:
    manifest = manifest.copy()
    for column in _STRING_COLUMNS:
        if column in manifest:
            manifest[column] = manifest[column].astype("string").fillna("")
    for column in _INTEGER_COLUMNS:
        if column in manifest:
            manifest[column] = pd.to_numeric(manifest[column]).astype("Int64")
    return manifest
