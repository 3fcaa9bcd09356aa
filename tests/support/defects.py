"""Small in-memory examples of every defect found in real photo archives (Kaggle PetImages).

Shared test data: ``defect_members()`` gives one archive member per defect with the status and
reason that ``inspect_image_bytes`` gives it (color_mode "rgb", min_side 8, max_pixels
40_000_000); ``petimages_members()`` adds the top-level files and exact duplicates of the real
archive; ``write_zip`` packs either into a zip. Everything is a few KB and built in milliseconds.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zipfile
import zlib

import cv2
import numpy as np
from PIL import Image

ROOT = "PetImages"
# Pillow's Image.transpose operation that turns a stored image with this EXIF orientation upright.
UPRIGHT_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Orientations 6 and 8 undo each other; every other transpose is its own inverse.
_STORED_TRANSPOSE = {
    **UPRIGHT_TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def smooth_pixels(seed: int, width: int, height: int, channels: int = 3) -> np.ndarray:
    """uint8 (height, width, channels) smooth colour noise: photo-like, so JPEG keeps it well."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, channels), dtype=np.uint8)
    pixels = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return pixels.reshape(height, width, channels)


def encode_with_pillow(pixels: np.ndarray, image_format: str, **options) -> bytes:
    """Encode an RGB/RGBA/grey uint8 array (or a PIL image) with Pillow."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.squeeze(pixels))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def good_jpeg(seed: int, width: int = 64, height: int = 48) -> bytes:
    """A clean baseline RGB JPEG (JFIF) of smooth noise, distinct for each seed."""
    return encode_with_pillow(smooth_pixels(seed, width, height), "JPEG", quality=92)


def greyscale_jpeg(seed: int, width: int = 64, height: int = 48) -> bytes:
    return encode_with_pillow(smooth_pixels(seed, width, height, channels=1), "JPEG", quality=92)


def cmyk_jpeg(seed: int, width: int = 64, height: int = 48, *, adobe_marker: bool = True) -> bytes:
    """A CMYK JPEG with inverted (Adobe) values, as Photoshop writes; optionally without APP14.

    Pillow's RGB to CMYK is C = 255 - R etc. with K = 0, so decoding should give the RGB back.
    """
    rgb = Image.fromarray(smooth_pixels(seed, width, height))
    data = encode_with_pillow(rgb.convert("CMYK"), "JPEG", quality=95)
    if not adobe_marker:
        data = remove_jpeg_segment(data, 0xEE)
    return data


def remove_jpeg_segment(data: bytes, marker: int) -> bytes:
    """Drop the first segment with this marker byte (e.g. 0xEE for Adobe APP14)."""
    start = data.index(bytes([0xFF, marker]))
    (length,) = struct.unpack_from(">H", data, start + 2)
    return data[:start] + data[start + 2 + length :]


def exif_rotated_jpeg(upright: np.ndarray, orientation: int) -> bytes:
    """JPEG storing ``upright`` (uint8 H, W, 3) turned so that EXIF ``orientation`` rights it."""
    stored = Image.fromarray(upright).transpose(_STORED_TRANSPOSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode_with_pillow(stored, "JPEG", quality=95, exif=exif.tobytes())


def with_trailing_junk(jpeg: bytes, junk: bytes = b"\x00" * 64 + b"trailing junk") -> bytes:
    return jpeg + junk


def with_extraneous_bytes(jpeg: bytes) -> bytes:
    """Bytes before the end marker: libjpeg warns 'N extraneous bytes before marker 0xd9'."""
    return jpeg[:-2] + b"\x12\x34\x56" + jpeg[-2:]


def jpeg_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid-looking JPEG of a few hundred bytes whose frame header claims width x height.

    A decoder would allocate and fill the whole frame (7.5 GB of RGB at the default size).
    """
    data = bytearray(good_jpeg(0, 16, 16))
    frame = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, frame + 5, height, width)
    return bytes(data)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid 1-bit greyscale PNG, all black, of width x height (~300 KB at the default size).

    Decoded to 8 bits it needs width * height bytes (2.5 GB by default, 7.5 GB as RGB). Built
    without materialising the raw rows: every row is zeros, so the zlib stream repeats one
    independently compressed block of 1 MiB of zeros (a full flush resets the dictionary, so
    copies can be concatenated), and the Adler-32 of n zeros is (n mod 65521) << 16 | 1.
    """
    raw_size = height * (1 + (width + 7) // 8)
    block_size = 1 << 20
    block = _raw_deflate(bytes(block_size), zlib.Z_FULL_FLUSH)
    tail = _raw_deflate(bytes(raw_size % block_size), zlib.Z_FINISH)
    adler = (raw_size % 65521) << 16 | 1
    stream = b"\x78\x9c" + block * (raw_size // block_size) + tail + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )


def _raw_deflate(data: bytes, flush_mode: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(flush_mode)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _encode_with_opencv(extension: str, rgb: np.ndarray) -> bytes:
    channels = 1 if rgb.ndim == 2 else rgb.shape[2]
    code = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}.get(channels)
    return cv2.imencode(extension, cv2.cvtColor(rgb, code) if code else rgb)[1].tobytes()


def _rgba(seed: int) -> np.ndarray:
    pixels = smooth_pixels(seed, 40, 36, channels=4)
    pixels[:, :20, 3] = 255  # half opaque, half with the noise as alpha
    return pixels


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested image was not found.</p></body></html>\n"
)
THUMBS_DB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)  # an OLE2 header, like Windows writes


def defect_members() -> dict[str, tuple[bytes, str, str]]:
    """One member per defect: ``{name: (content, expected_status, expected_reason)}``.

    The expected reason is the exact one ``inspect_image_bytes`` gives with color_mode "rgb",
    min_side 8 and max_pixels 40_000_000 (so also a valid prefix). Good images are kept with
    reason ``""``; every kept or converted image is at least 32 px a side. Sorted by name; a
    new dict on every call, so callers may change it.
    """
    return dict(_built_defect_members())


@functools.cache
def _built_defect_members() -> tuple[tuple[str, tuple[bytes, str, str]], ...]:
    cat, dog = f"{ROOT}/Cat", f"{ROOT}/Dog"
    clean = good_jpeg(40, 64, 48)
    truncated_png = _encode_with_opencv(".png", smooth_pixels(41, 40, 40))
    members = {
        f"{cat}/666.jpg": (b"", "quarantined", "empty file"),
        f"{dog}/11702.jpg": (b"", "quarantined", "empty file"),
        f"{cat}/truncated.jpg": (clean[: len(clean) // 2], "quarantined",
                                 "truncated: JPEG end marker missing"),
        f"{dog}/truncated.png": (truncated_png[:-40], "quarantined",
                                 "cannot decode: corrupt png data"),
        f"{cat}/html.jpg": (HTML_PAGE, "quarantined", "cannot decode: html data named .jpg"),
        f"{dog}/text.jpg": (b"This is not a picture.\n", "quarantined",
                            "cannot decode: unknown format"),
        f"{cat}/bmp.jpg": (_encode_with_opencv(".bmp", smooth_pixels(42, 48, 40)), "converted",
                           "bmp data named .jpg"),
        f"{dog}/png.jpg": (_encode_with_opencv(".png", smooth_pixels(43, 48, 40)), "converted",
                           "png data named .jpg"),
        f"{dog}/gif.jpg": (encode_with_pillow(smooth_pixels(44, 48, 40), "GIF"), "converted",
                           "palette to RGB, gif data named .jpg"),
        f"{cat}/cmyk.jpg": (cmyk_jpeg(45), "converted", "CMYK to RGB"),
        f"{dog}/cmyk_no_adobe.jpg": (cmyk_jpeg(46, adobe_marker=False), "converted",
                                     "CMYK to RGB"),
        f"{dog}/grey.jpg": (greyscale_jpeg(47), "converted", "greyscale to RGB"),
        f"{cat}/palette.png": (
            encode_with_pillow(Image.fromarray(smooth_pixels(48, 40, 40)).quantize(32), "PNG"),
            "converted", "palette to RGB",
        ),
        f"{dog}/rgba.png": (_encode_with_opencv(".png", _rgba(49)), "converted", "RGBA to RGB"),
        f"{cat}/16bit.png": (
            _encode_with_opencv(".png", smooth_pixels(50, 40, 36).astype(np.uint16) * 257),
            "converted", "16-bit to 8-bit",
        ),
        f"{cat}/exif_rotated.jpg": (exif_rotated_jpeg(smooth_pixels(51, 64, 48), 6), "converted",
                                    "EXIF orientation 6 applied"),
        f"{dog}/trailing.jpg": (with_trailing_junk(good_jpeg(52)), "kept",
                                "trailing data: 77 bytes after JPEG end"),
        f"{dog}/extraneous.jpg": (with_extraneous_bytes(good_jpeg(53)), "kept", ""),
        f"{cat}/tiny.jpg": (good_jpeg(54, 6, 5), "quarantined", "too small: 6x5 < 8"),
        f"{dog}/bomb.jpg": (jpeg_bomb(), "quarantined",
                            "too large: 50000x50000 > max_pixels 40000000"),
        f"{cat}/Thumbs.db": (THUMBS_DB, "skipped", "not an image: .db"),
        f"{dog}/Thumbs.db": (THUMBS_DB, "skipped", "not an image: .db"),
    }  # fmt: skip
    sizes = [(64, 48), (48, 64), (80, 60), (40, 40)]
    for class_index, folder in enumerate((cat, dog)):
        for index, (width, height) in enumerate(sizes):
            members[f"{folder}/{index}.jpg"] = (
                good_jpeg(10 * class_index + index, width, height), "kept", "",
            )  # fmt: skip
    return tuple(sorted(members.items()))


def petimages_members() -> dict[str, tuple[bytes, str, str]]:
    """``defect_members()`` plus the real archive's top-level files and exact duplicates.

    Duplicates are marked by ``prepare_dataset`` (not by ``inspect_image_bytes``): the first
    copy in sorted member-name order is kept, later ones get ``"duplicate of: <first path>"``.
    """
    members = defect_members()
    members[f"{ROOT}/readme[1].txt"] = (
        b"The Dogs vs. Cats images are published by Microsoft.\r\n", "skipped",
        "not an image: .txt",
    )  # fmt: skip
    members[f"{ROOT}/CDLA-Permissive-2.0.pdf"] = (
        b"%PDF-1.4\n% Community Data License Agreement - Permissive - Version 2.0\n%%EOF\n",
        "skipped", "not an image: .pdf",
    )  # fmt: skip
    for copy, original in ((f"{ROOT}/Cat/10.jpg", f"{ROOT}/Cat/0.jpg"),
                           (f"{ROOT}/Dog/10.jpg", f"{ROOT}/Cat/1.jpg")):  # fmt: skip
        members[copy] = (members[original][0], "quarantined", f"duplicate of: {original}")
    return dict(sorted(members.items()))


def write_zip(path: str | os.PathLike, members: dict) -> None:
    """Write ``{name: bytes or (bytes, ...)}`` as a deflated zip, in the given order."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content if isinstance(content, bytes) else content[0])
