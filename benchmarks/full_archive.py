"""``validate`` over a full-size PetImages archive: throughput, flat memory and the exact outcome.

Builds a zip laid out like the real Kaggle/PetImages one (``PetImages/Cat/0.jpg … 12499.jpg``,
``PetImages/Dog/…``, ``Thumbs.db`` in each class folder, a licence PDF and ``readme[1].txt`` at
the top) from the real photos of ``petimages-10k``, each re-encoded with a JPEG quality, crop and
flip drawn from the seed so that every photo is distinct bytes, plus every defect the real
archive has (``../shared/data/README.md``): the two empty files, JPEGs without a JFIF header
(EXIF first), BMP, PNG and GIF data named ``.jpg``, extraneous bytes before the end marker,
truncated, CMYK and greyscale JPEGs, undecodable files and the photo folder's own duplicates.
Then, in one run, with the probes of ``validation.py`` on the same files and worker count:
bare decode (read every ``.jpg`` member and ``cv2.imdecode`` it) against ``validate``
(``prepare_dataset`` from a cold start), both in ``.jpg`` files per second; peak memory (RSS of
the validating process plus its workers) at ``--small`` and ``--images`` photos, which must be
flat as the splits go to disk; and every member's status and reason in the manifest against
the outcome its construction implies (those ``tests/support/defects.py`` documents), exiting
with status 1 on any difference.

    python benchmarks/full_archive.py --images 25000 --small 5000 --workers 2
    python benchmarks/full_archive.py --photos ../shared/data/petimages-10k --images 25000 \\
        --small 5000 --workers 2 --image-size 128 --output benchmarks/results/full_archive.json
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The defect generators and their documented outcomes live with the tests
# (tests/support/defects.py, not part of the installed package) and the throughput and memory
# probes in this folder's validation.py: both go on the path, so that this script runs from
# any folder and its test can import it.
sys.path[:0] = [str(PROJECT_ROOT / "tests"), str(PROJECT_ROOT / "benchmarks")]

from support import defects
from validation import bare_decode, peak_memory_mb, timed_validation

from pixelflip.data.archive import class_of, is_image_name
from pixelflip.data.prepare import read_manifest

DEFAULT_PHOTOS = PROJECT_ROOT.parent / "shared" / "data" / "petimages-10k"
DEFAULT_OUTPUT = PROJECT_ROOT / "benchmarks" / "results" / "full_archive.json"
FULL_SIZE = 25_000  # photos in the real archive: 12,500 a class, numbered 0-12499
CLASSES = ("Cat", "Dog")
# Copies of one photo differ in height by at least this many pixels per copy, so their bytes
# always differ (the frame header alone does), whatever the quality and flip drawn.
_CROP_STEP = 8


def _jpeg(pixels: np.ndarray, quality: int, mode: str = "RGB") -> bytes:
    """JPEG of uint8 (H, W, 3) RGB ``pixels`` stored in Pillow ``mode`` (RGB, L or CMYK)."""
    image = Image.fromarray(pixels).convert(mode)
    return defects.encode_with_pillow(image, "JPEG", quality=quality)


def _without_jfif(jpeg: bytes) -> bytes:
    # Pillow writes a JFIF segment (APP0) before the EXIF one; the real files have none.
    return defects.remove_jpeg_segment(jpeg, 0xE0)


def _exif_first(pixels: np.ndarray, quality: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: upright
    encoded = defects.encode_with_pillow(pixels, "JPEG", quality=quality, exif=exif.tobytes())
    return _without_jfif(encoded)


def _exif_rotated(pixels: np.ndarray, quality: int) -> bytes:
    # defect_members' exif_rotated.jpg is stored with orientation 6, so its outcome names 6.
    return _without_jfif(defects.exif_rotated_jpeg(pixels, 6))


def _other_format(image_format: str) -> Callable[[np.ndarray, int], bytes]:
    return lambda pixels, quality: defects.encode_with_pillow(pixels, image_format)


def _from_jpeg(change: Callable[[bytes], bytes]) -> Callable[[np.ndarray, int], bytes]:
    """How to make a member by changing the bytes of the clean JPEG of the pixels."""
    return lambda pixels, quality: change(_jpeg(pixels, quality))


@dataclass(frozen=True)
class Defect:
    """One kind of defective member.

    Attributes:
        full_count: how many a full-size (25,000-photo) archive has; a smaller archive has
            proportionally fewer, at least one.
        outcome_of: the ``defects.defect_members()`` entry (without ``PetImages/``) whose
            status and reason this kind gets.
        make: the member's bytes from upright uint8 (H, W, 3) RGB pixels and a JPEG quality.
    """

    full_count: int
    outcome_of: str
    make: Callable[[np.ndarray, int], bytes]


# The counts follow the public reports on the real archive: about 1,650 files without a JFIF
# header (mostly EXIF first, a few other formats named .jpg) and a few dozen of each other kind.
DEFECTS = {
    "EXIF first, no JFIF": Defect(1_500, "Cat/0.jpg", _exif_first),
    "EXIF orientation 6, no JFIF": Defect(60, "Cat/exif_rotated.jpg", _exif_rotated),
    "BMP named .jpg": Defect(20, "Cat/bmp.jpg", _other_format("BMP")),
    "PNG named .jpg": Defect(10, "Dog/png.jpg", _other_format("PNG")),
    "GIF named .jpg": Defect(10, "Dog/gif.jpg", _other_format("GIF")),
    "extraneous bytes before 0xd9": Defect(
        30, "Dog/extraneous.jpg", _from_jpeg(defects.with_extraneous_bytes)
    ),
    "truncated JPEG": Defect(
        10, "Cat/truncated.jpg", _from_jpeg(lambda jpeg: jpeg[: len(jpeg) // 2])
    ),
    "CMYK JPEG": Defect(20, "Cat/cmyk.jpg", functools.partial(_jpeg, mode="CMYK")),
    "greyscale JPEG": Defect(40, "Dog/grey.jpg", functools.partial(_jpeg, mode="L")),
    "HTML page named .jpg": Defect(15, "Cat/html.jpg", lambda pixels, quality: defects.HTML_PAGE),
    # Lost its first two bytes (the start-of-image marker): no known format.
    "JPEG without its start": Defect(15, "Dog/text.jpg", _from_jpeg(lambda jpeg: jpeg[2:])),
}
# Every other photo: a clean JPEG, kept with no reason.
_PHOTO = Defect(0, "Cat/0.jpg", _jpeg)


@dataclass(frozen=True)
class SourcePhotos:
    """The photos an archive is built from.

    Attributes:
        unique: class folder name -> the bytes of each of its photos, in file-name order, with
            later copies of byte-identical files left out.
        identical: ``(class, bytes, number of files)`` for each set of byte-identical files.
    """

    unique: dict[str, list[bytes]]
    identical: list[tuple[str, bytes, int]]


def read_source_photos(folder: Path) -> SourcePhotos:
    """Read ``folder/Cat/*.jpg`` and ``folder/Dog/*.jpg``.

    Raises:
        SystemExit: the folder is missing, or one of its class folders is or holds no .jpg.
    """
    unique, first_of, copies = {}, {}, Counter()
    for label in CLASSES:
        paths = sorted((folder / label).glob("*.jpg"))
        if not paths:
            problem = f"has no {label}/*.jpg" if folder.is_dir() else "does not exist"
            raise SystemExit(
                f"The photos folder {folder} {problem}; this benchmark builds its archive from "
                "the shared PetImages photos (../shared/data/petimages-10k, see "
                "../shared/data/README.md): pass their folder to --photos."
            )
        unique[label] = []
        for path in paths:
            data = path.read_bytes()
            digest = hashlib.sha256(data).digest()
            copies[digest] += 1
            if copies[digest] == 1:
                first_of[digest] = (label, data)
                unique[label].append(data)
    identical = [(*first_of[digest], count) for digest, count in copies.items() if count > 1]
    return SourcePhotos(unique, identical)


def _variant(photo: bytes, copy: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """uint8 (H, W, 3) RGB pixels of a cropped, maybe flipped ``photo``, and a JPEG quality.

    ``copy`` is how many times the photo was used before: each copy loses more rows.
    """
    with Image.open(io.BytesIO(photo)) as image:
        pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    rows_cut = min(_CROP_STEP * copy + int(rng.integers(_CROP_STEP)), height // 2)
    columns_cut = int(rng.integers(min(_CROP_STEP, width // 2)))
    top, left = int(rng.integers(rows_cut + 1)), int(rng.integers(columns_cut + 1))
    pixels = pixels[top : height - rows_cut + top, left : width - columns_cut + left]
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels), int(rng.integers(70, 96))


def empty_file_number(label: str, count: int) -> int:
    """The number of the class's empty file in an archive of ``count`` photos a class.

    At full size the real archive's ``Cat/666.jpg`` and ``Dog/11702.jpg`` (as
    ``defects.defect_members()`` names them); in a smaller archive, the same place in order.
    """
    (name,) = [name for name, (content, _, _) in defects.defect_members().items()
               if not content and class_of(name) == label]  # fmt: skip
    return int(Path(name).stem) * count // (FULL_SIZE // 2)


def build_members(photos: SourcePhotos, images: int, seed: int = 0) -> dict:
    """The members of a PetImages-layout archive of ``images`` photos (half a class).

    Returns:
        ``{member name: (content, expected status, expected reason, kind)}`` sorted by name:
        the shape of ``defects.defect_members()`` (which ``defects.write_zip`` packs) plus what
        was built: ``"photo"``, ``"empty"``, ``"duplicate"``, ``"not an image"`` or a
        ``DEFECTS`` key.

    Raises:
        ValueError: ``images`` odd, or too few to hold every defect and keep photos to split;
            or two usable members with the same bytes that the construction did not plan.
    """
    counts = {kind: max(1, round(defect.full_count * images / FULL_SIZE))
              for kind, defect in DEFECTS.items()}  # fmt: skip
    # The first class takes the odd one of each defect, so that a tiny archive has them all.
    shares = [{kind: (count + 1 - index) // 2 for kind, count in counts.items()}
              for index in range(len(CLASSES))]  # fmt: skip
    planted = sum(copies for _, _, copies in photos.identical)
    # Per class: the empty file, the defects, the planted duplicates, and 3 photos to split.
    needed = 1 + sum(shares[0].values()) + planted + 3
    if images % 2 or images < 2 * needed:
        raise ValueError(
            f"--images must be even and at least {2 * needed}, to hold every defect and keep "
            f"3 photos a class to split; got {images}."
        )
    # Thumbs.db in each class folder, readme[1].txt and the licence at the top.
    members = {name: (*value, "not an image") for name, value in
               defects.petimages_members().items() if not is_image_name(name)}  # fmt: skip
    slot_rng = np.random.default_rng(seed)
    for class_index, share in enumerate(shares):
        members.update(_class_members(photos, class_index, images // 2, share, slot_rng, seed))
    _check_distinct(members)
    return dict(sorted(members.items()))


def _class_members(photos: SourcePhotos, class_index: int, count: int, shares: dict[str, int],
                   slot_rng: np.random.Generator, seed: int) -> dict:  # fmt: skip
    """``PetImages/<class>/0.jpg … <count - 1>.jpg``: the empty file, ``shares[kind]``
    members of each defect kind and the planted duplicates at random numbers, photos elsewhere.
    """
    label = CLASSES[class_index]
    folder = f"{defects.ROOT}/{label}"
    documented = defects.defect_members()
    outcome = {name.split("/", 1)[1]: (status, reason)
               for name, (_, status, reason) in documented.items()}  # fmt: skip
    # Its outcome is that of the full-size archive's empty file, which defect_members names.
    empty_outcome = outcome[f"{label}/{empty_file_number(label, FULL_SIZE // 2)}.jpg"]
    empty = empty_file_number(label, count)
    members = {f"{folder}/{empty}.jpg": (b"", *empty_outcome, "empty")}
    slots = iter(slot_rng.permutation([index for index in range(count) if index != empty]))
    kinds = {int(next(slots)): kind for kind, share in shares.items() for _ in range(share)}
    for other_label, data, copies in photos.identical:
        if other_label == label:
            names = sorted(f"{folder}/{next(slots)}.jpg" for _ in range(copies))
            members[names[0]] = (data, *outcome[_PHOTO.outcome_of], "duplicate")
            for name in names[1:]:
                members[name] = (data, "quarantined", f"duplicate of: {names[0]}", "duplicate")
    sources = photos.unique[label]
    for index in range(count):
        name = f"{folder}/{index}.jpg"
        if name in members:
            continue
        rng = np.random.default_rng((seed, class_index, index))
        pixels, quality = _variant(sources[index % len(sources)], index // len(sources), rng)
        kind = kinds.get(index, "photo")
        defect = DEFECTS.get(kind, _PHOTO)
        members[name] = (defect.make(pixels, quality), *outcome[defect.outcome_of], kind)
    return members


def _check_distinct(members: dict) -> None:
    """Raise ValueError if two usable members share bytes other than as planned duplicates."""
    first_of = {}
    for name, (content, status, *_) in sorted(members.items()):
        if status in ("kept", "converted"):
            other = first_of.setdefault(hashlib.sha256(content).digest(), name)
            if other != name:
                raise ValueError(f"{name} has the same bytes as {other}, which the construction "
                                 "did not plan; change --seed.")


def compare_outcome(manifest: pd.DataFrame, expected: dict[str, tuple[str, str]]) -> dict:
    """Every member's (status, reason) in ``manifest`` against ``expected`` (by member name).

    Returns:
        ``{"match": bool, "members": n, "mismatch_count": n, "mismatches": [first 20],
        "status_counts" / "reason_counts": {status or reason: {"expected": n, "found": n}}}``.
    """
    found = {row.path: (row.status, row.reason) for row in manifest.itertuples()}
    wrong = sorted(name for name in expected.keys() | found.keys()
                   if expected.get(name) != found.get(name))  # fmt: skip
    counts = {}
    for key, position in (("status_counts", 0), ("reason_counts", 1)):
        tally = {side: Counter(outcome[position] for outcome in outcomes.values())
                 for side, outcomes in (("expected", expected), ("found", found))}  # fmt: skip
        counts[key] = {value: {side: tally[side][value] for side in tally}
                       for value in sorted(tally["expected"].keys() | tally["found"].keys())}
    return {
        "match": not wrong, "members": len(found), "mismatch_count": len(wrong),
        "mismatches": [{"path": name, "expected": expected.get(name), "found": found.get(name)}
                       for name in wrong[:20]],
        **counts,
    }  # fmt: skip


def validate_and_compare(archive: Path, expected: dict[str, tuple[str, str]], out_dir: Path,
                         workers: int, image_size: int) -> tuple[float, dict]:  # fmt: skip
    """Seconds of ``validate`` (``prepare_dataset``) writing ``out_dir``, and its manifest's
    ``compare_outcome`` against ``expected``."""
    seconds, _ = timed_validation(archive, out_dir, workers, image_size)
    return seconds, compare_outcome(read_manifest(out_dir), expected)


def markdown(figures: dict) -> str:
    """The figures as markdown tables: throughput and memory, then the manifest outcome."""
    outcome = figures["outcome"]
    lines = [
        (f"{figures['images']:,} photos ({figures['members']:,} members, "
         f"{figures['zip_mb']:.0f} MB zip), {figures['workers']} workers, {figures['cores']} "
         f"cores, image_size {figures['image_size']}"),
        "",
        "| figure | value |",
        "| --- | --- |",
        (f"| bare decode (read + cv2.imdecode) | {figures['bare_decode_images_per_s']:.0f} "
         f"images/s ({figures['bare_decoded']:,} decoded) |"),
        f"| validate (prepare_dataset) | {figures['validate_images_per_s']:.0f} images/s |",
        f"| validate / bare decode | {figures['validate_over_decode']:.2f} |",
        *(f"| peak RSS (process + workers), {int(count):,} photos | {megabytes:.0f} MB |"
          for count, megabytes in figures["peak_memory_mb"].items()),
        (f"| manifest as constructed | {'yes' if outcome['match'] else 'NO'} "
         f"({outcome['members'] - outcome['mismatch_count']:,} of {outcome['members']:,}) |"),
        "",
        "| manifest | value | expected | found |",
        "| --- | --- | ---: | ---: |",
    ]
    for key in ("status", "reason"):
        for value, count in outcome[f"{key}_counts"].items():
            lines.append(f"| {key} | {value or '(none)'} | {count['expected']:,} | "
                         f"{count['found']:,} |")
    return "\n".join(lines)


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS,
                        help="folder with Cat/*.jpg and Dog/*.jpg (the shared petimages-10k)")
    parser.add_argument("--images", type=_at_least(2), default=FULL_SIZE, help="photos, even")
    parser.add_argument("--small", type=_at_least(2), default=5_000,
                        help="photos of the second archive, for the memory comparison")
    parser.add_argument("--workers", type=_at_least(1), default=2)
    parser.add_argument("--image-size", type=_at_least(1), default=128)
    parser.add_argument("--seed", type=_at_least(0), default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON of the figures")
    arguments = parser.parse_args(argv)
    if arguments.small >= arguments.images:
        parser.error(f"--small ({arguments.small}) must be below --images ({arguments.images})")

    started = time.perf_counter()
    photos = read_source_photos(arguments.photos)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        zips = {count: scratch / f"petimages-{count}.zip"
                for count in (arguments.small, arguments.images)}  # fmt: skip
        for count, path in zips.items():
            members = build_members(photos, count, arguments.seed)
            defects.write_zip(path, members)
        # The last archive built is the full one; its bytes (300 MB at full size) can go.
        expected = {name: (status, reason) for name, (_, status, reason, _) in members.items()}
        built = dict(sorted(Counter(kind for *_, kind in members.values()).items()))
        del members
        build_seconds = time.perf_counter() - started
        print(f"built the {arguments.small:,}- and {arguments.images:,}-photo archives in "
              f"{build_seconds:.0f} s", flush=True)

        archive = zips[arguments.images]
        image_names = [name for name in expected if is_image_name(name)]
        bare_seconds, decoded = bare_decode(archive, arguments.workers, image_names)
        print(f"bare decode: {bare_seconds:.0f} s", flush=True)
        validate_seconds, outcome = validate_and_compare(
            archive, expected, scratch / "prepared", arguments.workers, arguments.image_size
        )
        print(f"validate: {validate_seconds:.0f} s", flush=True)
        memory = {str(count): peak_memory_mb(path, arguments.workers, arguments.image_size)
                  for count, path in zips.items()}  # fmt: skip
        zip_mb = archive.stat().st_size / 2**20

    figures = {
        "photos": str(arguments.photos), "images": arguments.images,
        "members": outcome["members"], "zip_mb": zip_mb, "workers": arguments.workers,
        "cores": multiprocessing.cpu_count(), "image_size": arguments.image_size,
        "seed": arguments.seed, "built": built, "build_seconds": build_seconds,
        "bare_decode_seconds": bare_seconds, "bare_decoded": decoded,
        "bare_decode_images_per_s": len(image_names) / bare_seconds,
        "validate_seconds": validate_seconds,
        "validate_images_per_s": len(image_names) / validate_seconds,
        "validate_over_decode": bare_seconds / validate_seconds,
        "peak_memory_mb": memory,
        "peak_memory_ratio": memory[str(arguments.images)] / memory[str(arguments.small)],
        "outcome": outcome, "wall_seconds": time.perf_counter() - started,
    }  # fmt: skip
    print(markdown(figures))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {arguments.output}")
    if not outcome["match"]:
        raise SystemExit(
            f"The manifest differs from the construction for {outcome['mismatch_count']} "
            f"members, e.g. {outcome['mismatches'][:3]}."
        )


if __name__ == "__main__":
    main()
