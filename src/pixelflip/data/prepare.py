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

The settings come grouped as value objects, each checking its fields when built:
``InspectionSettings`` (how images are judged and stored), ``SplitSettings`` (this module),
``MemberSelection`` (which members are used) and ``ArchiveLimits`` (zip-bomb limits).
"""

from __future__ import annotations

import contextlib
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

from pixelflip.data.archive import ArchiveLimits, ArchiveMember, read_class_members
from pixelflip.data.inspect import STATUSES, USED_STATUSES
from pixelflip.data.scan import InspectionSettings, scan_members
from pixelflip.data.subset import MemberSelection, select_members
from pixelflip.stage.files import atomic_path

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = (
    "path", "label", "bytes", "sha256", "format", "width", "height", "channels",
    "status", "reason", "split",
)  # fmt: skip
_STRING_COLUMNS = ("path", "label", "sha256", "format", "status", "reason", "split")
_INTEGER_COLUMNS = ("bytes", "width", "height", "channels")


@dataclass(frozen=True)
class SplitSettings:
    """How the usable images are divided into the train, val and test splits.

    Attributes:
        val_fraction: fraction of the usable images for validation, in (0, 1).
        test_fraction: fraction of the usable images for test, in (0, 1); with
            ``val_fraction`` below 1 in total, so that images are left for training.

    Raises:
        ValueError: a fraction outside (0, 1) (NaN and infinity included), or fractions that
            leave no training images.
    """

    val_fraction: float
    test_fraction: float

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 < value < 1.0):
                raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}.")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be below 1 to leave training images, got "
                f"{self.val_fraction} + {self.test_fraction}."
            )


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
    inspection: InspectionSettings,
    split: SplitSettings,
    random_state: int,
    selection: MemberSelection = MemberSelection(),
    limits: ArchiveLimits = ArchiveLimits(),
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
        inspection: image size and color mode stored, and the sizes that quarantine an image
            (``min_side``, ``max_pixels``).
        split: the val and test fractions of the stratified split.
        random_state: seed of the per-class subset and of the stratified split.
        selection: the class folders used, under which labels, and the images per class
            inspected; by default every folder and every image.
        limits: zip-bomb limits, see ``read_class_members``.
        workers: processes inspecting images; None = every core.
        progress: show a progress bar while inspecting.

    Raises:
        ValueError: a ``selection.classes`` folder the archive lacks, fewer than 2 classes with
            usable images, or a split that would be empty or cannot be stratified (the value
            objects refuse bad settings as they are built). ``UnsafeArchiveError`` (a
            ValueError) for a hostile archive.
    """
    archive_path, out_dir = Path(archive_path), Path(out_dir)
    members = read_class_members(archive_path, limits=limits)
    members, excluded = select_members(archive_path, members, selection, random_state)
    image_shape = inspection.image_shape

    with atomic_path(out_dir) as temporary:
        temporary.mkdir()
        staging_path = temporary / "staging_images.bin"
        with open(staging_path, "wb") as staging:
            rows, used_rows = _inspect_members(
                archive_path, members, staging, inspection, workers, progress
            )
        classes, labels = _label_images(archive_path, rows, used_rows, excluded)
        split_positions = _stratified_split(labels, classes, split, random_state)
        for name, positions in split_positions.items():
            for position in positions:
                rows[used_rows[position]]["split"] = name
            _write_split(temporary, name, staging_path, image_shape, positions, labels[positions])
        staging_path.unlink()
        manifest = _write_manifest(temporary, rows + excluded, classes)

    summary = summarize_manifest(manifest)
    return PreparedDataset(
        out_dir=out_dir,
        classes=classes,
        split_sizes={name: len(positions) for name, positions in split_positions.items()},
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
    # Closed on the way out, error or interrupt included, so the worker pool is stopped before
    # the caller removes the folder the staging file is in, not whenever the generator is freed.
    stream = contextlib.closing(scan_members(archive_path, members, settings, workers=workers))
    with stream as scanned, tqdm(
        scanned, total=len(members), desc="inspect", unit="file", disable=not progress
    ) as bar:
        for member, record, image in bar:
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


def _label_images(
    archive_path: Path, rows: list[dict], used_rows: list[int], excluded: list[dict]
) -> tuple[list[str], np.ndarray]:
    """Class names, sorted, and the label index (int64 (N,)) of each staged image.

    Raises:
        ValueError: fewer than 2 classes have usable images.
    """
    classes = sorted({rows[index]["label"] for index in used_rows})
    if len(classes) < 2:
        manifest = pd.DataFrame(rows + excluded, columns=list(MANIFEST_COLUMNS))
        raise ValueError(_too_few_classes_message(archive_path, classes, manifest))
    class_index = {name: index for index, name in enumerate(classes)}
    labels = np.array([class_index[rows[index]["label"]] for index in used_rows], np.int64)
    return classes, labels


def _write_manifest(folder: Path, rows: list[dict], classes: list[str]) -> pd.DataFrame:
    """Write ``manifest.csv`` (the rows in member-path order) and ``classes.json``."""
    # The inspected and the excluded rows are each in member-path order; sorting merges them
    # into archive order.
    all_rows = sorted(rows, key=lambda row: row["path"])
    manifest = _with_manifest_dtypes(pd.DataFrame(all_rows, columns=list(MANIFEST_COLUMNS)))
    manifest.to_csv(folder / "manifest.csv", index=False)
    (folder / "classes.json").write_text(json.dumps(classes, indent=2) + "\n")
    return manifest


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
    labels: np.ndarray, class_names: list[str], settings: SplitSettings, random_state: int
) -> dict[str, np.ndarray]:
    """Positions into ``labels`` for each split, each sorted (so arrays keep archive order).

    Held-out sizes are rounded up (test first, then val from the rest), and each split takes
    every class in proportion, the rounding remainders going to the classes with the largest
    fractions. Written with NumPy rather than scikit-learn's ``train_test_split`` because
    importing scikit-learn costs two seconds, as long as validating two thousand photos.
    """
    val_fraction, test_fraction = settings.val_fraction, settings.test_fraction
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
        # Name every class: a surprise class (a subfolder taken for one) shows up here.
        per_class = {class_names[label]: int(n) for label, n in zip(classes, class_counts)}
        raise ValueError(
            f"Cannot make a stratified train/val/test split of {count} usable images in "
            f"{len(classes)} classes (images per class: {per_class}; split sizes {sizes}) with "
            f"val_fraction={val_fraction} and test_fraction={test_fraction}; a class is the "
            "folder an image sits in directly, so add images to the small classes, change the "
            "fractions, or leave a class out with data.classes."
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
