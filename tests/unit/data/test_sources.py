"""The download stage's logic: every source becomes one deterministic class-folder zip."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixelflip.data.archive import ArchiveLimits, UnsafeArchiveError, read_class_members
from pixelflip.data.sources import download_source, file_sha256


def _png(seed: int, size: int = 12) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".png", pixels)[1].tobytes()


def _write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _zip_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_mnist_archive_is_deterministic_with_ten_balanced_classes(tmp_path):
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    (first_dir / "stale.zip").write_bytes(b"old archive")

    first = download_source("mnist", first_dir)
    second = download_source("mnist", second_dir)

    assert first["sha256"] == second["sha256"]
    assert (first_dir / "mnist.zip").read_bytes() == (second_dir / "mnist.zip").read_bytes()
    assert not (first_dir / "stale.zip").exists()
    assert first["archive"] == "mnist.zip" and "path" not in first
    assert first["sha256"] == file_sha256(first_dir / "mnist.zip")
    assert first["bytes"] == (first_dir / "mnist.zip").stat().st_size
    assert first["class_counts"] == {str(digit): 500 for digit in range(10)}
    assert first["num_images"] == first["num_files"] == 5000
    assert first["created_by"].startswith("pixelflip ")
    assert json.loads((first_dir / "source.json").read_text()) == first

    members = read_class_members(first_dir / "mnist.zip")
    assert sorted({member.label for member in members}) == [str(digit) for digit in range(10)]
    assert all(member.path.split("/")[1].endswith(".png") for member in members)
    contents = _zip_contents(first_dir / "mnist.zip")
    assert list(contents) == sorted(contents)
    first_png = np.frombuffer(next(iter(contents.values())), np.uint8)
    image = cv2.imdecode(first_png, cv2.IMREAD_UNCHANGED)
    assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() > 0


def test_folder_source_copies_bytes_into_class_folders(tmp_path):
    files = {
        "cats/a.png": _png(1),
        "cats/b.jpg": _png(2),
        "cats/Thumbs.db": b"windows thumbnail cache",
        "dogs/c.png": _png(3),
        "README.txt": b"top-level note",
    }
    source = _write_files(tmp_path / "pets", files)

    record = download_source("folder", tmp_path / "raw", path=str(source))

    assert record["source"] == "folder" and record["path"] == str(source)
    assert record["archive"] == "pets.zip"
    assert record["class_counts"] == {"cats": 2, "dogs": 1}
    assert record["num_images"] == 3 and record["num_files"] == 5
    assert _zip_contents(tmp_path / "raw" / "pets.zip") == files


def test_folder_source_from_zip_with_wrapper_folder(tmp_path):
    zip_path = tmp_path / "kagglecatsanddogs.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("PetImages/", b"")
        archive.writestr("PetImages/Cat/0.jpg", _png(4))
        archive.writestr("PetImages/Cat/1.jpg", _png(5))
        archive.writestr("PetImages/Dog/0.jpg", _png(6))
        archive.writestr("__MACOSX/PetImages/Cat/._0.jpg", b"resource fork")

    record = download_source("folder", tmp_path / "raw", path=zip_path)

    contents = _zip_contents(tmp_path / "raw" / "kagglecatsanddogs.zip")
    assert sorted(contents) == ["Cat/0.jpg", "Cat/1.jpg", "Dog/0.jpg"]
    assert contents["Dog/0.jpg"] == _png(6)
    assert record["class_counts"] == {"Cat": 2, "Dog": 1}


def test_folder_source_with_nested_wrappers_and_clashing_names(tmp_path):
    files = {
        "data/train/cat/1.png": _png(7),
        "data/test/cat/1.png": _png(8),
        "data/train/dog/1.png": _png(9),
    }
    source = _write_files(tmp_path / "nested", files)

    download_source("folder", tmp_path / "raw", path=source)

    contents = _zip_contents(tmp_path / "raw" / "nested.zip")
    assert sorted(contents) == ["cat/1-2.png", "cat/1.png", "dog/1.png"]
    # Sorted source order: data/test/... comes before data/train/..., so it keeps the plain name.
    assert contents["cat/1.png"] == _png(8) and contents["cat/1-2.png"] == _png(7)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (None, "does not exist"),
        ({}, "contains no files"),
        ({"only/a.png": b"x", "only/b.png": b"y", "note.txt": b"z"}, "1 class folder"),
    ],
)
def test_folder_source_rejects_unusable_input(tmp_path, layout, message):
    source = tmp_path / "input"
    if layout is not None:
        source.mkdir()
        _write_files(source, layout)
    with pytest.raises(ValueError, match=message) as error:
        download_source("folder", tmp_path / "raw", path=source)
    assert "expected a folder of class subfolders" in str(error.value)
    assert not (tmp_path / "raw" / "source.json").exists()


def test_bad_arguments_name_the_allowed_values(tmp_path):
    with pytest.raises(ValueError, match=r"\['mnist', 'folder', 'kaggle'\]"):
        download_source("ftp", tmp_path)
    with pytest.raises(ValueError, match="needs a path"):
        download_source("folder", tmp_path)


def test_read_class_members_labels_by_parent_folder(tmp_path):
    zip_path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("wrapper/b/2.png", b"22")
        archive.writestr("wrapper/", b"")
        archive.writestr("top.png", b"1")
        archive.writestr("a/1.png", b"333")

    members = read_class_members(zip_path)

    assert [(member.path, member.label, member.size) for member in members] == [
        ("a/1.png", "a", 3),
        ("top.png", "", 1),
        ("wrapper/b/2.png", "b", 2),
    ]
    assert not any(member.is_dir for member in members)


def test_file_sha256_streams_the_whole_file(tmp_path):
    path = tmp_path / "big.bin"
    content = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)
    path.write_bytes(content)
    assert file_sha256(path) == hashlib.sha256(content).hexdigest()


def _leftovers(raw_dir: Path) -> list[str]:
    """What a refused download left in ``raw_dir``: nothing, not even a temporary."""
    return sorted(path.name for path in raw_dir.iterdir()) if raw_dir.exists() else []


def test_a_damaged_member_of_a_source_zip_is_named_in_one_error(tmp_path):
    zip_path = tmp_path / "pets.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("Cat/0.png", _png(10, size=40))
        archive.writestr("Dog/0.png", _png(11, size=40))
    content = bytearray(zip_path.read_bytes())
    content[content.index(_png(11, size=40)) + 100] ^= 0xFF  # Dog/0.png now fails its CRC
    zip_path.write_bytes(bytes(content))

    with pytest.raises(ValueError) as error:
        download_source("folder", tmp_path / "raw", path=zip_path)

    assert str(error.value).startswith(
        f"Cannot read member 'Dog/0.png' of the folder source zip {zip_path} (Bad CRC-32")
    assert "`dvc repro download`" in str(error.value)
    assert _leftovers(tmp_path / "raw") == []


def test_links_inside_the_folder_are_kept_and_links_leaving_it_are_refused(tmp_path):
    source = _write_files(tmp_path / "pets", {"cats/a.png": _png(12), "dogs/b.png": _png(13)})
    (source / "dogs" / "a-too.png").symlink_to(source / "cats" / "a.png")

    record = download_source("folder", tmp_path / "raw", path=source)
    assert _zip_contents(tmp_path / "raw" / "pets.zip")["dogs/a-too.png"] == _png(12)
    assert record["class_counts"] == {"cats": 1, "dogs": 2}

    secret = _write_files(tmp_path / "elsewhere", {"id_rsa.png": b"private key"})
    link = source / "cats" / "key.png"
    link.symlink_to(secret / "id_rsa.png")
    with pytest.raises(ValueError) as error:
        download_source("folder", tmp_path / "raw2", path=source)
    assert f"the symbolic link {link} -> {secret / 'id_rsa.png'} points to a file outside" in (
        str(error.value))
    assert _leftovers(tmp_path / "raw2") == []

    link.unlink()
    (source / "cats" / "more").symlink_to(source / "dogs", target_is_directory=True)
    with pytest.raises(ValueError, match="points to a folder; folder links are not followed"):
        download_source("folder", tmp_path / "raw3", path=source)


def test_images_in_a_class_folder_and_its_subfolder_are_refused_by_name(tmp_path):
    source = _write_files(tmp_path / "pets", {"Cat/1.png": _png(14), "Cat/sub/2.png": _png(15),
                                              "Dog/3.png": _png(16)})
    with pytest.raises(ValueError) as error:
        download_source("folder", tmp_path / "raw", path=source)
    assert "has images both in Cat/ and in its subfolder Cat/sub/" in str(error.value)
    assert "'sub' would become a class of its own" in str(error.value)


def test_download_applies_the_archive_limits_it_is_given(tmp_path):
    zip_path = tmp_path / "blank.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Cat/blank.bmp", bytes(4 << 20))  # 4 MiB of zeros: ratio ~1000
        archive.writestr("Dog/0.png", _png(17))
    with pytest.raises(UnsafeArchiveError, match="validate.max_compression_ratio 100"):
        download_source("folder", tmp_path / "raw", path=zip_path)

    lenient = ArchiveLimits(max_compression_ratio=1e6)
    record = download_source("folder", tmp_path / "raw", path=zip_path, limits=lenient)
    assert record["class_counts"] == {"Cat": 1, "Dog": 1}

    # The limits also guard the written raw archive, for every source.
    source = _write_files(tmp_path / "pets", {"cats/a.png": _png(18), "dogs/b.png": _png(19)})
    tiny = ArchiveLimits(max_uncompressed_bytes=100)
    with pytest.raises(UnsafeArchiveError, match="validate.max_uncompressed_gb"):
        download_source("folder", tmp_path / "raw", path=source, limits=tiny)


@pytest.mark.parametrize("field", ["max_compression_ratio", "max_uncompressed_bytes"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0])
def test_archive_limits_refuse_values_that_are_not_finite_and_positive(field, value):
    with pytest.raises(ValueError, match=field):
        ArchiveLimits(**{field: value})
