"""Per-file inspection: what a member of the raw archive is and whether a model can use it.

Each file gets a status:

- ``kept``: a readable image already in the requested colour mode (the reason may carry a note
  that changes nothing in the pixels, e.g. ``"trailing data: 120 bytes after JPEG end"``);
- ``converted``: a readable image that needed a conversion (colour mode, CMYK, palette, alpha,
  16-bit depth, EXIF orientation, or content in another format than its extension says); the
  reason lists them, e.g. ``"CMYK to RGB, EXIF orientation 6 applied"``;
- ``quarantined``: an image file that cannot be used (empty, truncated, undecodable, too small,
  too large);
- ``skipped``: not an image file at all.

Reasons read ``"<kind>: <detail>"`` (or just ``"<kind>"``), so counting the text before ``":"``
groups them.

Each file is read once: its header is parsed (JPEG and PNG here, the other formats through
Pillow's lazy header reader), then it is decoded once, by OpenCV (Pillow only when OpenCV
cannot). Sizes are checked from the header, so a decompression bomb is never decoded. JPEG
orientation is applied here (OpenCV is told to ignore it) so that a reduced decode and the
Pillow fallback give the same upright image; width and height always describe that upright image.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from pixelflip.data.archive import file_extension, is_image_name

STATUSES = ("kept", "converted", "quarantined", "skipped")
USED_STATUSES = ("kept", "converted")
COLOR_MODES = ("grayscale", "rgb")

_EXTENSION_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png",
                      ".bmp": "bmp", ".gif": "gif", ".webp": "webp", ".tif": "tiff",
                      ".tiff": "tiff"}  # fmt: skip
_TARGET_MODE_NAMES = {"grayscale": "greyscale", "rgb": "RGB"}
_JPEG_MODES = {1: "greyscale", 3: "RGB", 4: "CMYK"}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
# Pillow's plugin for each format, e.g. PIL.BmpImagePlugin.BmpImageFile.
_PILLOW_PLUGINS = {"bmp": "Bmp", "gif": "Gif", "jpeg": "Jpeg", "png": "Png", "tiff": "Tiff",
                   "webp": "WebP"}  # fmt: skip
# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xDA)])
# OpenCV's DCT-scaled JPEG decode; the greyscale flags carry no colour bit, so OR-ing in
# IMREAD_COLOR_RGB asks for RGB at the same scale.
_REDUCED_DECODE_FLAGS = {8: cv2.IMREAD_REDUCED_GRAYSCALE_8, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                         2: cv2.IMREAD_REDUCED_GRAYSCALE_2}  # fmt: skip
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class _Header:
    """What a file's header says, before any pixel is decoded.

    ``width``/``height`` are those of the upright image (EXIF orientation applied); ``problem``
    is a full quarantine reason when the file cannot be decoded.
    """

    width: int | None = None
    height: int | None = None
    channels: int | None = None
    source_mode: str | None = None
    orientation: int = 1
    trailing_bytes: int = 0
    problem: str = ""


def sniff_format(data: bytes) -> str:
    """Image format from the file's first bytes (its magic number), whatever its name says.

    Returns one of ``"jpeg", "png", "bmp", "gif", "webp", "tiff"`` or ``"unknown"``.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"BM"):
        return "bmp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return "unknown"


def inspect_image_bytes(
    data: bytes,
    *,
    name: str,
    min_side: int,
    color_mode: str = "rgb",
    max_pixels: int = 40_000_000,
    target_size: int | None = None,
) -> tuple[dict, np.ndarray | None]:
    """Inspect one file's bytes and decode it, upright, into the requested colour mode.

    Args:
        data: the file's content.
        name: the file (member) name; its extension decides whether this is an image file.
        min_side: images whose shorter side is below this many pixels are quarantined.
        color_mode: ``"grayscale"`` or ``"rgb"``, the colour mode the pipeline trains in.
        max_pixels: images with more pixels than this are quarantined from their header alone,
            without being decoded (decompression bombs).
        target_size: the side the caller will resize the image to, or None. When given, a JPEG
            whose shorter side is at least 2, 4 or 8 times ``target_size`` is decoded at 1/2, 1/4
            or 1/8 scale (the largest factor that keeps the shorter side at least
            ``target_size``), which costs less; other images are decoded in full.

    Returns:
        ``(record, image)``. ``record`` has keys ``bytes, sha256, format, width, height,
        channels, status, reason``: ``format`` is the content's format (see ``sniff_format``),
        ``width``/``height`` those of the original upright image in full size (None when the
        header could not be read) and ``channels`` those of the original (1 grey, 2 grey with
        alpha, 3 colour or palette, 4 colour with alpha or CMYK).
        ``image`` is uint8 in [0, 255], upright, shape (H, W, 1) for grayscale or (H, W, 3) RGB,
        for ``kept`` and ``converted`` files (H, W smaller than the record's when a reduced
        decode was used); else None.

    Raises:
        ValueError: if ``color_mode`` is unknown or ``min_side``, ``max_pixels`` or a given
            ``target_size`` is not a positive integer.
    """
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {list(COLOR_MODES)}, got {color_mode!r}.")
    require_positive_int("min_side", min_side)
    require_positive_int("max_pixels", max_pixels)
    if target_size is not None:
        require_positive_int("target_size", target_size)

    image_format = sniff_format(data)
    record = {
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": image_format,
        "width": None,
        "height": None,
        "channels": None,
        "status": "kept",
        "reason": "",
    }
    extension = file_extension(name)
    if not is_image_name(name):
        return _mark(record, "skipped", f"not an image: {extension or '(no extension)'}"), None
    if not data:
        return _mark(record, "quarantined", "empty file"), None

    header = _read_header(data, image_format, extension)
    width, height = header.width, header.height
    if width is not None:
        record.update(width=width, height=height, channels=header.channels)
        if width * height > max_pixels:
            reason = f"too large: {width}x{height} > max_pixels {max_pixels}"
            return _mark(record, "quarantined", reason), None
    if header.problem:
        return _mark(record, "quarantined", header.problem), None
    if min(width, height) < min_side:
        return _mark(record, "quarantined", f"too small: {width}x{height} < {min_side}"), None

    pixels = _decode(data, image_format, color_mode, _reduction(width, height, target_size))
    if pixels is None:
        return _mark(record, "quarantined", f"cannot decode: corrupt {image_format} data"), None
    if pixels.dtype not in (np.uint8, np.uint16):
        return _mark(record, "quarantined", f"cannot decode: pixel type {pixels.dtype}"), None
    if image_format != "jpeg":
        record["channels"] = 1 if pixels.ndim == 2 else int(pixels.shape[2])

    is_palette = image_format == "gif" or (image_format == "png" and data[25] == 3)
    source_mode = "palette" if is_palette else header.source_mode
    image, notes = _to_color_mode(pixels, color_mode, source_mode)
    if image_format != _EXTENSION_FORMATS[extension]:
        notes.append(f"{image_format} data named {extension}")
    if header.orientation != 1:
        image = _apply_orientation(image, header.orientation)
        notes.append(f"EXIF orientation {header.orientation} applied")
    if notes:
        _mark(record, "converted", ", ".join(notes))
    if header.trailing_bytes:
        note = f"trailing data: {header.trailing_bytes} bytes after JPEG end"
        record["reason"] = ", ".join(filter(None, [record["reason"], note]))
    return record, image


def require_positive_int(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is an integer of at least 1 (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _mark(record: dict, status: str, reason: str) -> dict:
    record.update(status=status, reason=reason)
    return record


def _read_header(data: bytes, image_format: str, extension: str) -> _Header:
    """Dimensions and colour layout from the header alone; never decodes pixels."""
    if image_format == "jpeg":
        return _read_jpeg_header(data)
    if image_format == "png":
        if len(data) < 33 or data[12:16] != b"IHDR":
            return _Header(problem="cannot decode: corrupt png data")
        width, height = struct.unpack_from(">II", data, 16)
        return _Header(width, height, _PNG_CHANNELS.get(data[25]))
    if image_format == "unknown":
        start = data[:1024].lstrip().lower()
        if b"<html" in start or start.startswith(b"<!doctype html"):
            return _Header(problem=f"cannot decode: html data named {extension}")
        return _Header(problem="cannot decode: unknown format")
    try:
        with _open_with_pillow(data, image_format) as image:
            bands = len(image.getbands())
            # A palette index stands for an RGB colour.
            channels = bands + 2 if image.mode in ("P", "PA") else bands
            return _Header(image.width, image.height, channels)
    except Exception:  # noqa: BLE001 - any Pillow failure means the header is unreadable
        return _Header(problem=f"cannot decode: corrupt {image_format} data")


def _read_jpeg_header(data: bytes) -> _Header:
    """Walk the marker segments from SOI to the first SOS, then look for the end marker.

    Collects the frame size and component count (SOF), the EXIF orientation (APP1) and whether
    the data ends (EOI) or was cut. OpenCV and Pillow both decode CMYK JPEGs with Adobe's
    inverted convention, which is what Photoshop and libjpeg write, so CMYK needs no flag here.
    """
    frame, orientation, position, size, end = (), 1, 2, len(data), 0
    problem = "truncated: JPEG ends inside its header"
    while True:
        position = data.find(b"\xff", position)
        # Any number of 0xFF fill bytes may precede a marker.
        while 0 <= position < size - 1 and data[position + 1] == 0xFF:
            position += 1
        if position < 0 or position + 2 > size:
            break
        marker = data[position + 1]
        if marker == 0xD9:
            problem = "cannot decode: JPEG has no image data"
            break
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if position + 4 > size:
            break
        segment_end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position + 4 : segment_end]
        if marker in _JPEG_FRAME_MARKERS and len(segment) >= 6:
            height, width, components = struct.unpack_from(">HHB", segment, 1)
            frame = (width, height, components, _JPEG_MODES.get(components, "RGB"))
        elif marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            orientation = _exif_orientation(segment[6:])
        elif marker == 0xDA:
            end = _jpeg_end(data, segment_end)
            problem = "" if end >= 2 or not frame else "truncated: JPEG end marker missing"
            break
        position = segment_end
    if not frame or 0 in frame[:2]:
        return _Header(problem=problem or "cannot decode: JPEG has no valid frame header")
    if orientation >= 5:
        frame = (frame[1], frame[0], *frame[2:])
    if problem:
        return _Header(*frame, orientation, problem=problem)
    return _Header(*frame, orientation, trailing_bytes=size - end)


def _jpeg_end(data: bytes, scan_start: int) -> int:
    """Position just past the end marker (EOI) after ``scan_start``; 1 when there is none.

    Entropy-coded data escapes every 0xFF as FF00, so FFD9 after the scan header is the end
    marker (an EXIF thumbnail's own FFD9 lies before it). A file that ends in FFD9 is complete:
    the common case, checked without a search.
    """
    if data.endswith(b"\xff\xd9") and len(data) - 2 >= scan_start:
        return len(data)
    return data.find(b"\xff\xd9", scan_start) + 2


def _exif_orientation(tiff: bytes) -> int:
    """The orientation tag (1-8) of IFD0 in an EXIF TIFF block; 1 when absent or malformed."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return 1
    try:
        (offset,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        for entry in range(offset + 2, offset + 2 + 12 * count, 12):
            tag, kind, _, value = struct.unpack_from(order + "HHIH", tiff, entry)
            if tag == _ORIENTATION_TAG:
                return value if kind == 3 and 1 <= value <= 8 else 1
    except struct.error:
        pass
    return 1


def _reduction(width: int, height: int, target_size: int | None) -> int:
    """Largest DCT scale-down factor (1, 2, 4, 8) keeping the shorter side >= target_size."""
    if target_size is None:
        return 1
    return next((factor for factor in (8, 4, 2) if min(width, height) >= factor * target_size), 1)


def _decode(data: bytes, image_format: str, color_mode: str, reduction: int) -> np.ndarray | None:
    """Decode once: (H, W) grey or (H, W, C) with channels in RGB(A) order, uint8 or uint16.

    A JPEG is decoded by OpenCV straight into the pipeline's mode (1/``reduction`` scale, EXIF
    orientation not applied); other formats as stored. Pillow decodes what OpenCV refuses.
    """
    if image_format == "jpeg":
        flags = _REDUCED_DECODE_FLAGS.get(reduction, cv2.IMREAD_GRAYSCALE)
        flags |= cv2.IMREAD_IGNORE_ORIENTATION
        flags |= cv2.IMREAD_COLOR_RGB if color_mode == "rgb" else 0
    else:
        flags = cv2.IMREAD_UNCHANGED
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        pixels = None
    if image_format != "jpeg" and pixels is not None and pixels.ndim == 3 and pixels.shape[2] > 2:
        code = cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        pixels = cv2.cvtColor(pixels, code)
    pixels = _squeeze_single_channel(pixels)
    return _decode_with_pillow(data, image_format) if pixels is None else pixels


def _open_with_pillow(data: bytes, image_format: str):
    """Open lazily (header only) with the format's own Pillow plugin.

    Calling the plugin class directly skips ``Image.open``'s decompression-bomb check, whose
    global limit is not ours to change: ``max_pixels`` has been checked from the header.
    """
    import importlib

    name = _PILLOW_PLUGINS[image_format]
    plugin = importlib.import_module(f"PIL.{name}ImagePlugin")
    return getattr(plugin, f"{name}ImageFile")(io.BytesIO(data))


def _decode_with_pillow(data: bytes, image_format: str) -> np.ndarray | None:
    """Fallback decoder for what OpenCV refuses; same layout as ``_decode``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open_with_pillow(data, image_format) as image:
                image.load()
                if image.mode in ("P", "PA"):
                    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                    image = image.convert("L" if image.mode == "1" else "RGB")
                elif image.mode.startswith("I;16"):
                    return np.asarray(image, dtype=np.uint16)
                return _squeeze_single_channel(np.asarray(image))
    except Exception:  # noqa: BLE001 - any Pillow failure means "cannot decode"
        return None


def _squeeze_single_channel(pixels: np.ndarray | None) -> np.ndarray | None:
    if pixels is None or pixels.size == 0 or pixels.ndim not in (2, 3):
        return None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0]
    return pixels if pixels.ndim == 2 or pixels.shape[2] in (2, 3, 4) else None


def _to_color_mode(
    pixels: np.ndarray, color_mode: str, source_mode: str | None
) -> tuple[np.ndarray, list[str]]:
    """Convert decoded pixels to uint8 (H, W, 1) or (H, W, 3); list the conversions made.

    ``source_mode`` names the file's colour mode when the pixels no longer show it (palette,
    or a JPEG decoded straight into the target mode); None to read it from the channel count.
    """
    conversions = []
    if pixels.dtype == np.uint16:
        # 65535 / 257 = 255 exactly, so the full range maps onto the full range.
        pixels = np.rint(pixels / 257.0).astype(np.uint8)
        conversions.append("16-bit to 8-bit")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if source_mode is None:
        source_mode = {1: "greyscale", 2: "greyscale+alpha", 3: "RGB", 4: "RGBA"}[channels]
    if channels in (2, 4):
        # Transparent pixels often carry arbitrary colour; compositing on white shows the image
        # as a viewer would.
        alpha = pixels[:, :, -1:].astype(np.float32) / 255.0
        colour = pixels[:, :, :-1].astype(np.float32)
        pixels = np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        pixels = pixels[:, :, 0] if channels == 2 else pixels
    if color_mode == "rgb":
        image = np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels
    else:
        image = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
        image = image[:, :, None]
    target_mode = _TARGET_MODE_NAMES[color_mode]
    if source_mode != target_mode:
        conversions.insert(0, f"{source_mode} to {target_mode}")
    return np.ascontiguousarray(image), conversions


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W, C) image stored with EXIF ``orientation`` (2-8) upright."""
    if orientation in (5, 6, 7, 8):
        # Orientations 5-8 store the image transposed, then mirrored like 4, 3, 2 or 1.
        image = cv2.transpose(image)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    flip_code = {2: 1, 3: -1, 4: 0}.get(orientation)
    if flip_code is not None:
        image = cv2.flip(image, flip_code)
    return np.ascontiguousarray(image.reshape(*image.shape[:2], -1))
