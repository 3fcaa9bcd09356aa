"""Per-file inspection: status, reason and decoded pixels of one archive member."""

from __future__ import annotations

import io
import math
import struct
import tracemalloc

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from support.defects import (
    defect_members,
    encode_with_pillow,
    exif_rotated_jpeg,
    good_jpeg,
    jpeg_bomb,
    png_bomb,
    smooth_pixels,
    with_extraneous_bytes,
    with_trailing_junk,
)

from pixelflip.data.inspect import inspect_image_bytes


def _pixels(seed: int, height: int = 20, width: int = 24, channels: int = 3) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _encode(extension: str, pixels: np.ndarray) -> bytes:
    return cv2.imencode(extension, pixels)[1].tobytes()


def _inspect(data: bytes, name: str = "a/x.jpg", color_mode: str = "rgb", **options):
    options.setdefault("min_side", 8)
    return inspect_image_bytes(data, name=name, color_mode=color_mode, **options)


def _pillow_rgb(data: bytes, mode: str = "RGB") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert(mode))


def _mean_difference(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(first.astype(np.int16) - second.astype(np.int16)).mean())


# --- statuses and reasons ------------------------------------------------------------------

PNG = _encode(".png", _pixels(3))
GREY_PNG = _encode(".png", _pixels(4, channels=1))
DEEP_PNG = _encode(".png", _pixels(7).astype(np.uint16) * 257)
TINY_PNG = _encode(".png", _pixels(2, 5, 30))


@pytest.mark.parametrize(
    ("name", "data", "color_mode", "status", "reason"),
    [
        ("a/empty.jpg", b"", "rgb", "quarantined", "empty file"),
        ("a/text.jpg", b"not a picture", "rgb", "quarantined", "cannot decode: unknown format"),
        ("a/cut.png", PNG[:60], "rgb", "quarantined", "cannot decode: corrupt png data"),
        ("a/tiny.png", TINY_PNG, "rgb", "quarantined", "too small: 30x5 < 8"),
        ("a/notes.txt", b"hello", "rgb", "skipped", "not an image: .txt"),
        ("a/png.jpg", PNG, "rgb", "converted", "png data named .jpg"),
        ("a/grey.png", GREY_PNG, "rgb", "converted", "greyscale to RGB"),
        ("a/grey.png", GREY_PNG, "grayscale", "kept", ""),
        ("a/rgba.png", _encode(".png", _pixels(5, channels=4)), "rgb", "converted", "RGBA to RGB"),
        ("a/colour.jpg", _encode(".jpg", _pixels(6)), "grayscale", "converted", "RGB to greyscale"),
        ("a/deep.png", DEEP_PNG, "rgb", "converted", "16-bit to 8-bit"),
        ("a/photo.jpg", _encode(".jpg", _pixels(8)), "rgb", "kept", ""),
    ],
)
def test_inspection_status_and_reason(name, data, color_mode, status, reason):
    record, image = _inspect(data, name, color_mode)

    assert (record["status"], record["reason"]) == (status, reason)
    assert record["bytes"] == len(data)
    assert len(record["sha256"]) == 64
    if status in ("kept", "converted"):
        assert image.dtype == np.uint8
        assert image.shape == (20, 24, 3 if color_mode == "rgb" else 1)
        assert (record["width"], record["height"]) == (24, 20)
    else:
        assert image is None


DEFECTS = defect_members()


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_every_archive_defect_gets_its_status_and_reason(name):
    data, status, reason = DEFECTS[name]

    record, image = _inspect(data, name)

    assert (record["status"], record["reason"]) == (status, reason)
    if status in ("kept", "converted"):
        assert image.dtype == np.uint8 and image.flags.c_contiguous
        assert image.shape == (record["height"], record["width"], 3)
        assert min(image.shape[:2]) >= 32
    else:
        assert image is None


def test_defects_in_grayscale_mode_name_the_source_colour_mode():
    reasons = {
        name: _inspect(DEFECTS[f"PetImages/{name}"][0], name, "grayscale")[0]["reason"]
        for name in ("Cat/cmyk.jpg", "Dog/grey.jpg", "Cat/0.jpg", "Cat/palette.png")
    }

    assert reasons == {
        "Cat/cmyk.jpg": "CMYK to greyscale",
        "Dog/grey.jpg": "",
        "Cat/0.jpg": "RGB to greyscale",
        "Cat/palette.png": "palette to greyscale",
    }


def test_inspection_detects_format_from_content_and_keeps_rgb_order():
    buffer = io.BytesIO()
    red = np.zeros((10, 10, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(buffer, format="GIF")

    record, image = _inspect(buffer.getvalue(), "a/red.gif")

    assert record["format"] == "gif" and record["status"] == "converted"
    assert record["reason"] == "palette to RGB"
    assert image[0, 0].tolist() == [255, 0, 0]


def test_pillow_decodes_what_opencv_refuses():
    # A GIF without its final trailer byte: OpenCV gives up, Pillow has every pixel.
    gif = encode_with_pillow(smooth_pixels(1, 40, 30), "GIF")
    assert cv2.imdecode(np.frombuffer(gif[:-1], np.uint8), cv2.IMREAD_UNCHANGED) is None

    _, expected = _inspect(gif, "a/x.gif")
    record, image = _inspect(gif[:-1], "a/x.gif")

    assert (record["status"], record["reason"]) == ("converted", "palette to RGB")
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize(
    ("option", "value"),
    [("color_mode", "cmyk"), ("min_side", 0), ("max_pixels", 0), ("target_size", 0)],
)
def test_inspection_rejects_bad_arguments(option, value):
    with pytest.raises(ValueError, match=option):
        _inspect(b"", "a/x.png", **{option: value})


# --- colours and orientation ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["PetImages/Cat/cmyk.jpg", "PetImages/Dog/cmyk_no_adobe.jpg"])
def test_cmyk_jpeg_colours_match_pillow_and_the_rgb_it_was_made_from(name):
    data = DEFECTS[name][0]
    seed = 45 if "Cat" in name else 46

    record, image = _inspect(data, name)

    assert record["channels"] == 4
    assert np.abs(image.astype(np.int16) - _pillow_rgb(data)).max() <= 2
    # Inverted CMYK would be off by about 128 on average; JPEG loss is a few levels.
    assert _mean_difference(image, smooth_pixels(seed, 64, 48)) < 4


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_gives_the_upright_image(orientation):
    upright = smooth_pixels(orientation, 64, 48)
    data = exif_rotated_jpeg(upright, orientation)

    record, image = _inspect(data, "a/turned.jpg")
    _, grey = _inspect(data, "a/turned.jpg", "grayscale")

    assert record["status"] == "converted"
    assert record["reason"] == f"EXIF orientation {orientation} applied"
    assert (record["width"], record["height"]) == (64, 48)
    assert image.shape == upright.shape and grey.shape == (48, 64, 1)
    assert _mean_difference(image, upright) < 3
    assert np.abs(image.astype(np.int16) - _pillow_rgb(data)).max() <= 2
    assert _mean_difference(grey[:, :, 0], _pillow_rgb(data, "L")) < 1


def test_exif_orientation_1_is_kept_as_stored():
    exif = Image.Exif()
    exif[0x0112] = 1
    upright = smooth_pixels(9, 64, 48)
    data = encode_with_pillow(upright, "JPEG", quality=95, exif=exif.tobytes())

    record, image = _inspect(data)

    assert (record["status"], record["reason"]) == ("kept", "")
    assert _mean_difference(image, upright) < 3


# --- truncated, trailing and corrupt data ----------------------------------------------------


def _with_exif_thumbnail(jpeg: bytes) -> bytes:
    """Put a complete small JPEG (with its own FFD9) in an APP1 segment, as cameras do."""
    payload = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00" + good_jpeg(5, 16, 16)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


CLEAN = good_jpeg(3, 64, 48)
# Progressive JPEGs have several scans with tables between them, all after the first SOS.
PROGRESSIVE = encode_with_pillow(smooth_pixels(3, 64, 48), "JPEG", quality=92, progressive=True)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (CLEAN[:20], "truncated: JPEG ends inside its header"),
        (CLEAN[: len(CLEAN) * 3 // 4], "truncated: JPEG end marker missing"),
        (CLEAN[:-1], "truncated: JPEG end marker missing"),
        (CLEAN[:-2], "truncated: JPEG end marker missing"),
        (CLEAN[:-2] + bytes(500), "truncated: JPEG end marker missing"),
        (_with_exif_thumbnail(CLEAN)[:-200], "truncated: JPEG end marker missing"),
        (PROGRESSIVE[: len(PROGRESSIVE) * 2 // 3], "truncated: JPEG end marker missing"),
        (CLEAN[:2] + b"\xff\xd9", "cannot decode: JPEG has no image data"),
    ],
    ids=["header", "3/4", "half-marker", "no-marker", "zero-padded", "thumbnail", "progressive",
         "empty"],
)  # fmt: skip
def test_truncated_jpeg_is_quarantined(data, reason):
    record, image = _inspect(data)

    assert (record["status"], record["reason"], image) == ("quarantined", reason, None)


@pytest.mark.parametrize("extension", [".png", ".gif", ".bmp"])
def test_truncated_images_of_other_formats_are_quarantined(extension):
    data = encode_with_pillow(smooth_pixels(4, 40, 30), extension[1:].upper())

    record, image = _inspect(data[: len(data) // 2], f"a/cut{extension}")

    assert (record["status"], image) == ("quarantined", None)
    assert record["reason"] == f"cannot decode: corrupt {extension[1:]} data"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (with_trailing_junk(CLEAN), "trailing data: 77 bytes after JPEG end"),
        (with_trailing_junk(CLEAN, b"\xff\xd8\xff\xe0 another file \xff"),
         "trailing data: 19 bytes after JPEG end"),
        (with_extraneous_bytes(CLEAN), ""),
        (_with_exif_thumbnail(CLEAN), ""),
    ],
    ids=["zeros", "marker-like", "extraneous-before-end", "exif-thumbnail"],
)  # fmt: skip
def test_readable_jpeg_oddities_are_kept_with_the_clean_pixels(data, reason):
    _, clean = _inspect(CLEAN)

    record, image = _inspect(data)

    assert (record["status"], record["reason"]) == ("kept", reason)
    np.testing.assert_array_equal(image, clean)


# --- size limits -----------------------------------------------------------------------------


def _bmp_bomb() -> bytes:
    data = bytearray(encode_with_pillow(smooth_pixels(2, 16, 16), "BMP"))
    struct.pack_into("<ii", data, 18, 60_000, 60_000)
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "build", "size"),
    [("a/bomb.png", png_bomb, "50000x50000"), ("a/bomb.jpg", jpeg_bomb, "50000x50000"),
     ("a/bomb.bmp", _bmp_bomb, "60000x60000")],
)  # fmt: skip
def test_decompression_bomb_is_quarantined_from_its_header(name, build, size):
    data = build()
    _inspect(_encode(".bmp", _pixels(1)), "a/warm.bmp")  # imports Pillow's plugins beforehand
    tracemalloc.start()
    try:
        record, image = _inspect(data, name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert (record["status"], image) == ("quarantined", None)
    assert record["reason"] == f"too large: {size} > max_pixels 40000000"
    # A full decode needs at least one byte per pixel: 2.5 GB or more. NumPy's and OpenCV's
    # arrays are traced, so anything near that shows up here.
    assert peak < 16 * 2**20


def test_max_pixels_bounds_width_times_height():
    data = good_jpeg(1, 64, 48)

    at_limit, _ = _inspect(data, max_pixels=64 * 48)
    over, image = _inspect(data, max_pixels=64 * 48 - 1)

    assert at_limit["status"] == "kept"
    assert (over["status"], over["reason"]) == ("quarantined", "too large: 64x48 > max_pixels 3071")
    assert image is None


# --- reduced decode --------------------------------------------------------------------------

PHOTO = good_jpeg(11, 640, 480)


@pytest.mark.parametrize(
    ("target_size", "shape"),
    [(60, (60, 80)), (64, (120, 160)), (200, (240, 320)), (240, (240, 320)), (241, (480, 640))],
)
def test_reduced_decode_is_smaller_but_never_below_target(target_size, shape):
    _, full = _inspect(PHOTO)

    record, image = _inspect(PHOTO, target_size=target_size)

    assert (record["width"], record["height"]) == (640, 480)
    assert image.shape == (*shape, 3)
    resized = [
        cv2.resize(pixels, (target_size, target_size), interpolation=cv2.INTER_AREA)
        for pixels in (image, full)
    ]
    assert _mean_difference(*resized) < 2


def test_reduced_decode_keeps_orientation_and_grayscale():
    upright = smooth_pixels(12, 320, 240)
    data = exif_rotated_jpeg(upright, 8)

    record, image = _inspect(data, color_mode="grayscale", target_size=50)

    assert (record["width"], record["height"], record["reason"]) == (
        320, 240, "RGB to greyscale, EXIF orientation 8 applied",
    )  # fmt: skip
    assert image.shape == (math.ceil(240 / 4), math.ceil(320 / 4), 1)
    expected = cv2.resize(
        cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY), (80, 60), interpolation=cv2.INTER_AREA
    )
    assert _mean_difference(image[:, :, 0], expected) < 3


def test_target_size_leaves_other_formats_at_full_size():
    data = encode_with_pillow(smooth_pixels(13, 320, 240), "PNG")

    _, image = _inspect(data, "a/x.png", target_size=32)

    assert image.shape == (240, 320, 3)


def test_progressive_jpeg_is_kept_with_the_pixels_of_the_baseline_one():
    assert PROGRESSIVE.count(b"\xff\xda") > 1

    record, image = _inspect(PROGRESSIVE)
    _, baseline = _inspect(CLEAN)

    assert (record["status"], record["reason"]) == ("kept", "")
    assert _mean_difference(image, baseline) < 1
