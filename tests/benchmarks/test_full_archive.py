"""The full-archive benchmark builds the PetImages layout with every defect, and its outcome
check finds validation's manifest exactly as constructed: on a 40-photo archive, in seconds."""

import hashlib
import importlib.util
import io
import json
import sys
import zipfile

import pytest
from PIL import Image, UnidentifiedImageError
from support.defects import good_jpeg, with_extraneous_bytes, write_zip
from support.project import ROOT

SCRIPT = ROOT / "benchmarks" / "full_archive.py"
IMAGES = 40
# A script, not a package module: loaded from its file (and registered, for its dataclasses).
_specification = importlib.util.spec_from_file_location("full_archive", SCRIPT)
full_archive = sys.modules["full_archive"] = importlib.util.module_from_spec(_specification)
_specification.loader.exec_module(full_archive)


@pytest.fixture(scope="module")
def photos_folder(tmp_path_factory):
    """Six photo-sized JPEGs a class, named like petimages-10k, two cats byte-identical (as in
    the shared set), so the test needs no shared data."""
    folder = tmp_path_factory.mktemp("photos")
    for class_index, label in enumerate(("Cat", "Dog")):
        (folder / label).mkdir()
        for number in range(6):
            photo = good_jpeg(10 * class_index + number, 200, 200)
            (folder / label / f"{label.lower()}.{5000 + number}.jpg").write_bytes(photo)
    (folder / "Cat" / "cat.5006.jpg").write_bytes((folder / "Cat" / "cat.5001.jpg").read_bytes())
    return folder


@pytest.fixture(scope="module")
def members(photos_folder):
    photos = full_archive.read_source_photos(photos_folder)
    return full_archive.build_members(photos, IMAGES, seed=0)


def _opened(content: bytes) -> tuple[str, str, int]:
    """(format, mode, EXIF orientation) that Pillow reads, or a word for what it cannot."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            try:
                image.load()
            except OSError:
                return "truncated", image.format, 0
            return image.format, image.mode, image.getexif().get(0x0112, 0)
    except UnidentifiedImageError:
        return "unidentified", "", 0


def _no_jfif_exif_first(content: bytes, orientation: int) -> bool:
    return content[:4] == b"\xff\xd8\xff\xe1" and _opened(content) == ("JPEG", "RGB", orientation)


# What each kind of member must be, checked with Pillow, independently of the validator.
IS_KIND = {
    "photo": lambda content: _opened(content) == ("JPEG", "RGB", 0) and b"JFIF" in content[:20],
    "duplicate": lambda content: _opened(content)[:2] == ("JPEG", "RGB"),
    "empty": lambda content: content == b"",
    "not an image": lambda content: _opened(content)[0] == "unidentified",
    "EXIF first, no JFIF": lambda content: _no_jfif_exif_first(content, 1),
    "EXIF orientation 6, no JFIF": lambda content: _no_jfif_exif_first(content, 6),
    "BMP named .jpg": lambda content: _opened(content)[:2] == ("BMP", "RGB"),
    "PNG named .jpg": lambda content: _opened(content)[:2] == ("PNG", "RGB"),
    "GIF named .jpg": lambda content: _opened(content)[:2] == ("GIF", "P"),
    # The clean JPEG with its end marker put back right after the entropy data.
    "extraneous bytes before 0xd9": lambda content: (
        with_extraneous_bytes(content[:-5] + content[-2:]) == content
        and _opened(content)[:2] == ("JPEG", "RGB")
    ),
    "truncated JPEG": lambda content: _opened(content)[:2] == ("truncated", "JPEG"),
    "CMYK JPEG": lambda content: _opened(content)[:2] == ("JPEG", "CMYK"),
    "greyscale JPEG": lambda content: _opened(content)[:2] == ("JPEG", "L"),
    "HTML page named .jpg": lambda content: content.lstrip().lower().startswith(b"<!doctype html"),
    "JPEG without its start": lambda content: (
        _opened(content)[0] == "unidentified" and content[:2] == b"\xff\xe0"
    ),
}


def test_the_archive_has_the_petimages_layout(members, tmp_path):
    numbered = {f"PetImages/{label}/{number}.jpg" for label in ("Cat", "Dog")
                for number in range(IMAGES // 2)}  # fmt: skip
    extras = {"PetImages/Cat/Thumbs.db", "PetImages/Dog/Thumbs.db", "PetImages/readme[1].txt",
              "PetImages/CDLA-Permissive-2.0.pdf"}  # fmt: skip
    assert set(members) == numbered | extras
    write_zip(tmp_path / "petimages.zip", members)
    with zipfile.ZipFile(tmp_path / "petimages.zip") as archive:
        assert sorted(archive.namelist()) == sorted(members)
    # The real archive's empty files at full size, and their counterparts here.
    assert [full_archive.empty_file_number(label, 12_500) for label in ("Cat", "Dog")] == [
        666, 11702
    ]
    assert members["PetImages/Cat/1.jpg"][0] == members["PetImages/Dog/18.jpg"][0] == b""


def test_every_defect_is_present_and_is_what_its_kind_says(members):
    kinds = {kind for *_, kind in members.values()}
    assert kinds == set(IS_KIND) == {"photo", "duplicate", "empty", "not an image",
                                     *full_archive.DEFECTS}  # fmt: skip
    wrong = [name for name, (content, *_, kind) in members.items() if not IS_KIND[kind](content)]
    assert wrong == []


def test_photos_are_distinct_bytes_but_the_planted_duplicate(members, photos_folder):
    usable = [content for content, status, *_ in members.values()
              if status in ("kept", "converted")]  # fmt: skip
    assert len({hashlib.sha256(content).digest() for content in usable}) == len(usable)
    planted = {name: value for name, value in members.items() if value[3] == "duplicate"}
    first, second = sorted(planted)
    source = (photos_folder / "Cat" / "cat.5001.jpg").read_bytes()
    assert planted[first][:3] == (source, "kept", "")
    assert planted[second][:3] == (source, "quarantined", f"duplicate of: {first}")


def test_validation_outcome_matches_the_construction_exactly(members, tmp_path):
    write_zip(tmp_path / "petimages.zip", members)
    expected = {name: (status, reason) for name, (_, status, reason, _) in members.items()}
    _, outcome = full_archive.validate_and_compare(
        tmp_path / "petimages.zip", expected, tmp_path / "prepared", workers=1, image_size=32
    )
    assert outcome["match"], outcome["mismatches"]
    assert outcome["members"] == IMAGES + 4

    # The check is not vacuous: one member expected otherwise is reported, by name.
    expected["PetImages/Cat/0.jpg"] = ("kept", "a reason it does not get")
    wrong = full_archive.compare_outcome(
        full_archive.read_manifest(tmp_path / "prepared"), expected
    )
    assert not wrong["match"] and wrong["mismatch_count"] == 1
    assert wrong["mismatches"][0]["path"] == "PetImages/Cat/0.jpg"


def test_tiny_run_prints_the_table_and_writes_the_json(photos_folder, tmp_path, capsys):
    output = tmp_path / "results" / "full_archive.json"
    full_archive.main(["--photos", str(photos_folder), "--images", str(IMAGES), "--small", "36",
                       "--workers", "1", "--image-size", "32", "--output", str(output)])
    figures = json.loads(output.read_text())
    assert figures["outcome"]["match"] is True
    assert set(figures["peak_memory_mb"]) == {"36", str(IMAGES)}
    assert figures["validate_over_decode"] == pytest.approx(
        figures["validate_images_per_s"] / figures["bare_decode_images_per_s"]
    )
    printed = capsys.readouterr().out
    assert "| validate / bare decode |" in printed and "| manifest as constructed | yes" in printed


def test_a_missing_photos_folder_names_it(tmp_path):
    missing = tmp_path / "petimages-10k"
    with pytest.raises(SystemExit, match=f"The photos folder {missing} does not exist"):
        full_archive.main(["--photos", str(missing), "--images", "40", "--small", "36"])
