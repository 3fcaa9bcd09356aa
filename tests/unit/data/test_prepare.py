"""Per-file inspection and the validate stage's cleaning, resizing and splitting."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pixelflip.data.archive import ArchiveLimits, UnsafeArchiveError
from pixelflip.data.prepare import (
    MANIFEST_COLUMNS,
    SPLITS,
    SplitSettings,
    prepare_dataset,
    read_manifest,
    summarize_manifest,
)
from pixelflip.data.scan import InspectionSettings
from pixelflip.data.subset import MemberSelection

CLASSES = ("ants", "bees", "cats")
PER_CLASS = 10


def _pixels(seed: int, height: int = 20, width: int = 24, channels: int = 3) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _encode(extension: str, pixels: np.ndarray) -> bytes:
    return cv2.imencode(extension, pixels)[1].tobytes()



# --- prepare_dataset -----------------------------------------------------------------------


def _build_archive(path: Path) -> dict[str, bytes]:
    """Three classes of 10 distinct images each, plus one of every kind of defect."""
    members = {}
    for class_index, name in enumerate(CLASSES):
        for index in range(PER_CLASS):
            size = (10 + index, 30 - 2 * index)  # some shrink, some grow to 16x16
            members[f"wrapper/{name}/{index:02d}.png"] = _encode(
                ".png", _pixels(100 * class_index + index, *size)
            )
    members["wrapper/ants/zz_copy.png"] = members["wrapper/ants/03.png"]
    members["wrapper/bees/empty.jpg"] = b""
    members["wrapper/bees/broken.jpg"] = b"not an image"
    members["wrapper/cats/tiny.png"] = _encode(".png", _pixels(9, 3, 3))
    members["wrapper/cats/Thumbs.db"] = b"cache"
    members["loose.png"] = _encode(".png", _pixels(10))
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return members


def _prepare(archive: Path, out_dir: Path, **overrides):
    """``prepare_dataset`` with these tests' settings; ``overrides`` may name any field of its
    value objects, which are built here (so a bad field raises inside the caller's check)."""
    arguments = dict(
        image_size=16,
        color_mode="rgb",
        val_fraction=0.2,
        test_fraction=0.2,
        min_side=8,
        random_state=0,
        workers=1,
        progress=False,
    )
    arguments.update(overrides)

    def fields(*names):
        return {name: arguments.pop(name) for name in names if name in arguments}

    inspection = InspectionSettings(**fields("image_size", "color_mode", "min_side", "max_pixels"))
    split = SplitSettings(**fields("val_fraction", "test_fraction"))
    selection = MemberSelection(**fields("classes", "max_images_per_class"))
    limits = ArchiveLimits(**fields("max_compression_ratio", "max_uncompressed_bytes"))
    return prepare_dataset(archive, out_dir, inspection=inspection, split=split,
                           selection=selection, limits=limits, **arguments)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepare")
    members = _build_archive(root / "raw.zip")
    result = _prepare(root / "raw.zip", root / "prepared")
    return root, members, result


def test_manifest_has_one_row_per_member_with_exact_columns(prepared):
    root, members, _ = prepared
    manifest = read_manifest(root / "prepared")

    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert sorted(manifest["path"]) == sorted(members)
    by_path = manifest.set_index("path")
    assert by_path.loc["wrapper/ants/zz_copy.png", "status"] == "quarantined"
    assert by_path.loc["wrapper/ants/zz_copy.png", "reason"] == "duplicate of: wrapper/ants/03.png"
    assert by_path.loc["wrapper/ants/03.png", "status"] == "kept"
    assert by_path.loc["wrapper/bees/empty.jpg", "reason"] == "empty file"
    assert by_path.loc["wrapper/bees/broken.jpg", "reason"].startswith("cannot decode")
    assert by_path.loc["wrapper/cats/tiny.png", "reason"] == "too small: 3x3 < 8"
    assert by_path.loc["wrapper/cats/Thumbs.db", "status"] == "skipped"
    assert by_path.loc["loose.png", "status"] == "skipped"
    assert by_path.loc["loose.png", "reason"] == "not in a class folder"
    used = manifest["status"].isin(["kept", "converted"])
    assert set(manifest.loc[used, "split"]) == {"train", "val", "test"}
    assert (manifest.loc[~used, "split"] == "").all()


def test_splits_are_stratified_disjoint_and_sized(prepared):
    root, _, result = prepared
    manifest = read_manifest(root / "prepared")
    out = root / "prepared"

    assert result.classes == list(CLASSES)
    assert json.loads((out / "classes.json").read_text()) == list(CLASSES)
    assert result.split_sizes == {"train": 18, "val": 6, "test": 6}
    assert result.image_shape == (16, 16, 3)
    paths = {split: set(manifest.loc[manifest["split"] == split, "path"]) for split in SPLITS}
    assert not paths["train"] & paths["val"]
    assert not paths["train"] & paths["test"]
    assert not paths["val"] & paths["test"]
    for split, size in result.split_sizes.items():
        images = np.load(out / f"{split}_images.npy")
        labels = np.load(out / f"{split}_labels.npy")
        assert images.shape == (size, 16, 16, 3) and images.dtype == np.uint8
        assert labels.shape == (size,) and labels.dtype == np.int64
        # 10 images per class split 6/2/2: every class in every split in proportion.
        assert np.bincount(labels, minlength=3).tolist() == [size // 3] * 3
    assert sorted(path.name for path in out.iterdir()) == sorted(
        ["manifest.csv", "classes.json"]
        + [f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels")]
    )
    assert [path.name for path in root.iterdir() if path.name.startswith(".")] == []


def test_stored_images_are_the_resized_originals(prepared):
    root, members, _ = prepared
    manifest = read_manifest(root / "prepared")
    test_rows = manifest[manifest["split"] == "test"].reset_index(drop=True)
    images = np.load(root / "prepared" / "test_images.npy")
    labels = np.load(root / "prepared" / "test_labels.npy")

    for position, row in test_rows.iterrows():
        original = cv2.imdecode(np.frombuffer(members[row["path"]], np.uint8), cv2.IMREAD_COLOR)
        original = cv2.cvtColor(original, cv2.COLOR_BGR2RGB)
        interpolation = cv2.INTER_AREA if min(original.shape[:2]) >= 32 else cv2.INTER_LINEAR
        expected = cv2.resize(original, (16, 16), interpolation=interpolation)
        np.testing.assert_array_equal(images[position], expected)
        assert CLASSES[labels[position]] == row["label"]


def test_summary_counts_statuses_reasons_and_classes(prepared):
    root, _, result = prepared
    csv_path = root / "prepared" / "manifest.csv"
    summary = summarize_manifest(read_manifest(csv_path))

    assert summary["status_counts"] == {"kept": 30, "converted": 0, "quarantined": 4, "skipped": 2}
    assert summary["status_counts"] == result.status_counts
    assert summary["reason_counts"] == {
        "cannot decode": 1,
        "duplicate of": 1,
        "empty file": 1,
        "not an image": 1,
        "not in a class folder": 1,
        "too small": 1,
    }
    assert summary["class_counts"] == dict.fromkeys(CLASSES, 10)
    assert summary["split_counts"] == {"train": 18, "val": 6, "test": 6}
    for raw in (pd.read_csv(csv_path), pd.read_csv(csv_path, keep_default_na=False)):
        assert summarize_manifest(raw) == summary


def test_prepare_is_deterministic_and_grayscale_has_one_channel(prepared, tmp_path):
    root, _, _ = prepared
    again = _prepare(root / "raw.zip", tmp_path / "again")
    grey = _prepare(root / "raw.zip", tmp_path / "grey", color_mode="grayscale", image_size=8)

    for split in SPLITS:
        for kind in ("images", "labels"):
            name = f"{split}_{kind}.npy"
            first, second = root / "prepared" / name, tmp_path / "again" / name
            assert first.read_bytes() == second.read_bytes()
    assert again.split_sizes == {"train": 18, "val": 6, "test": 6}
    assert grey.image_shape == (8, 8, 1)
    assert np.load(tmp_path / "grey" / "train_images.npy").shape == (18, 8, 8, 1)
    manifest = pd.read_csv(tmp_path / "grey" / "manifest.csv")
    assert set(manifest.loc[manifest["status"] == "converted", "reason"]) == {"RGB to greyscale"}


def test_fewer_than_two_classes_is_an_error_that_writes_nothing(tmp_path):
    archive = tmp_path / "one.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for index in range(5):
            zipped.writestr(f"only/{index}.png", _encode(".png", _pixels(index)))
        zipped.writestr("other/broken.png", b"garbage")

    with pytest.raises(ValueError, match=r"Only 1 class\(es\).*only: 5") as error:
        _prepare(archive, tmp_path / "out")
    assert "cannot decode" in str(error.value)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [archive]


def test_split_that_would_be_empty_is_named(tmp_path):
    archive = tmp_path / "small.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for index in range(4):
            zipped.writestr(f"{'ab'[index % 2]}/{index}.png", _encode(".png", _pixels(index)))

    with pytest.raises(ValueError, match="train split would be empty.*more images"):
        _prepare(archive, tmp_path / "out", val_fraction=0.4, test_fraction=0.4)
    with pytest.raises(ValueError, match="stratified"):
        _prepare(archive, tmp_path / "out", val_fraction=0.1, test_fraction=0.1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "below 1"),
        ({"image_size": 0}, "image_size"),
        ({"color_mode": "rgba"}, "color_mode"),
        ({"val_fraction": float("nan")}, "val_fraction"),
        ({"test_fraction": float("inf")}, "test_fraction"),
        ({"min_side": 0}, "min_side"),
        ({"max_pixels": 0}, "max_pixels"),
        ({"max_images_per_class": 0}, "max_images_per_class"),
        ({"classes": ["cats"]}, "classes must map"),
        ({"max_compression_ratio": float("nan")}, "max_compression_ratio"),
        ({"max_uncompressed_bytes": float("inf")}, "max_uncompressed_bytes"),
        ({"max_uncompressed_bytes": 0}, "max_uncompressed_bytes"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        _prepare(tmp_path / "missing.zip", tmp_path / "out", **overrides)


def test_parallel_workers_give_the_same_output_as_one(prepared, tmp_path):
    root, _, _ = prepared
    _prepare(root / "raw.zip", tmp_path / "parallel", workers=2)

    for name in ["manifest.csv", "classes.json"] + [
        f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels")
    ]:
        assert (tmp_path / "parallel" / name).read_bytes() == (root / "prepared" / name).read_bytes()


def _write_class_zip(path: Path, folders: dict[str, int], extra: dict[str, bytes] = ()) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for folder_index, (folder, count) in enumerate(folders.items()):
            for index in range(count):
                pixels = _pixels(1000 * folder_index + index)
                archive.writestr(f"{folder}/{index:02d}.png", _encode(".png", pixels))
        for name, content in dict(extra).items():
            archive.writestr(name, content)


def test_classes_map_folders_to_labels_and_skip_the_others(tmp_path):
    archive = tmp_path / "raw.zip"
    _write_class_zip(archive, {"train/cats": 6, "test/cats": 4, "train/dogs": 10, "birds": 5})

    result = _prepare(archive, tmp_path / "out", classes={"cats": "cat", "dogs": "dog"})

    manifest = read_manifest(tmp_path / "out")
    assert result.classes == ["cat", "dog"]
    birds = manifest[manifest["path"].str.startswith("birds/")]
    assert len(birds) == 5
    assert (birds["status"] == "skipped").all()
    assert set(birds["reason"]) == {"class not selected: birds"}
    used = manifest[manifest["status"] == "kept"]
    assert used.groupby("label").size().to_dict() == {"cat": 10, "dog": 10}
    assert manifest["path"].tolist() == sorted(manifest["path"])


def test_classes_naming_a_folder_the_archive_lacks_is_an_error(tmp_path):
    archive = tmp_path / "raw.zip"
    _write_class_zip(archive, {"Cat": 5, "Dog": 5})

    with pytest.raises(ValueError, match=r"data.classes names folder\(s\) \['cats'\].*'Cat', 'Dog'"):
        _prepare(archive, tmp_path / "out", classes={"cats": "cat", "Dog": "dog"})
    assert not (tmp_path / "out").exists()


def test_max_images_per_class_inspects_a_seeded_subset(tmp_path):
    archive = tmp_path / "raw.zip"
    _write_class_zip(archive, {"a": 10, "b": 12}, extra={"a/Thumbs.db": b"cache"})

    def kept_paths(seed, name):
        _prepare(archive, tmp_path / name, max_images_per_class=5, random_state=seed,
                 val_fraction=0.2, test_fraction=0.2)
        manifest = read_manifest(tmp_path / name)
        subset = manifest[manifest["reason"].str.startswith("not in subset")]
        assert len(subset) == 5 + 7
        assert (subset["status"] == "skipped").all() and (subset["sha256"] == "").all()
        assert manifest.loc[manifest["path"] == "a/Thumbs.db", "status"].item() == "skipped"
        kept = manifest[manifest["status"] == "kept"]
        assert kept.groupby("label").size().to_dict() == {"a": 5, "b": 5}
        return set(kept["path"])

    first = kept_paths(1, "first")
    assert kept_paths(1, "again") == first
    assert kept_paths(2, "other") != first


def _zip_with(path: Path, name: str, content: bytes, compression=zipfile.ZIP_STORED) -> None:
    _write_class_zip(path, {"a": 3, "b": 3})
    with zipfile.ZipFile(path, "a", compression=compression) as archive:
        archive.writestr(zipfile.ZipInfo(name), content, compress_type=compression)


@pytest.mark.parametrize(
    ("name", "content", "compression", "overrides", "message"),
    [
        ("/etc/cron.d/evil.png", b"x", zipfile.ZIP_STORED, {}, "absolute path or '..'"),
        ("a/../../evil.png", b"x", zipfile.ZIP_STORED, {}, "path traversal"),
        ("C:/evil.png", b"x", zipfile.ZIP_STORED, {}, "absolute path"),
        ("a/bomb.png", bytes(8 << 20), zipfile.ZIP_DEFLATED, {}, "zip bomb"),
        ("a/big.png", bytes(3000), zipfile.ZIP_STORED, {"max_uncompressed_bytes": 2000},
         "validate.max_uncompressed_gb"),
    ],
    ids=["absolute", "dot-dot", "drive-letter", "ratio", "total-size"],
)
def test_hostile_archives_are_refused_whole_and_nothing_is_written(
    tmp_path, name, content, compression, overrides, message
):
    archive = tmp_path / "raw.zip"
    _zip_with(archive, name, content, compression)

    with pytest.raises(UnsafeArchiveError, match=message) as error:
        _prepare(archive, tmp_path / "out", **overrides)
    assert name in str(error.value) or "unpack to" in str(error.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["raw.zip"]


def test_a_member_the_zip_cannot_read_is_quarantined(tmp_path):
    archive = tmp_path / "raw.zip"
    _write_class_zip(archive, {"a": 5, "b": 5})
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zipped:
        info = zipped.getinfo("a/02.png")
    # Flip a byte inside the stored member's data: the CRC no longer matches.
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[data_start + 40] ^= 0xFF
    archive.write_bytes(bytes(data))

    _prepare(archive, tmp_path / "out", val_fraction=0.2, test_fraction=0.2)

    row = read_manifest(tmp_path / "out").set_index("path").loc["a/02.png"]
    assert (row["status"], row["reason"]) == ("quarantined", "unreadable member: BadZipFile")
