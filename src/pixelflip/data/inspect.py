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

Each file is read once: its header is parsed (``headers.read_header``: JPEG and PNG directly,
the other formats through Pillow's lazy header reader), then it is decoded once, by OpenCV
(Pillow only when OpenCV cannot). Sizes are checked from the header, so a decompression bomb is
never decoded. JPEG orientation is applied here (OpenCV is told to ignore it) so that a reduced
decode and the Pillow fallback give the same upright image; width and height always describe
that upright image.
"""

from __future__ import annotations

import hashlib
import warnings

import cv2
import numpy as np

from pixelflip.config.checks import check_integer
from pixelflip.data.archive import file_extension, is_image_name
from pixelflip.data.headers import open_with_pillow, read_header, sniff_format

STATUSES = ("kept", "converted", "quarantined", "skipped")
USED_STATUSES = ("kept", "converted")
COLOR_MODES = ("grayscale", "rgb")

_EXTENSION_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png",
                      ".bmp": "bmp", ".gif": "gif", ".webp": "webp", ".tif": "tiff",
                      ".tiff": "tiff"}  # fmt: skip
_TARGET_MODE_NAMES = {"grayscale": "greyscale", "rgb": "RGB"}
# OpenCV's DCT-scaled JPEG decode; the greyscale flags carry no colour bit, so OR-ing in
# IMREAD_COLOR_RGB asks for RGB at the same scale.
_REDUCED_DECODE_FLAGS = {8: cv2.IMREAD_REDUCED_GRAYSCALE_8, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                         2: cv2.IMREAD_REDUCED_GRAYSCALE_2}  # fmt: skip


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
    check_integer("min_side", min_side, minimum=1)
    check_integer("max_pixels", max_pixels, minimum=1)
    if target_size is not None:
        check_integer("target_size", target_size, minimum=1)

    image_format = sniff_format(data)
    record = blank_record(
        bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), format=image_format
    )
    extension = file_extension(name)
    if not is_image_name(name):
        return _mark(record, "skipped", f"not an image: {extension or '(no extension)'}"), None
    if not data:
        return _mark(record, "quarantined", "empty file"), None

    header = read_header(data, image_format, extension)
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

    image, notes = _to_color_mode(pixels, color_mode, header.source_mode)
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


def blank_record(**values) -> dict:
    """A record with the keys ``inspect_image_bytes`` returns, for a file not (yet) inspected.

    Unknown sizes are None, text is ``""`` and the status ``kept``; ``values`` override them,
    so every place that records a file without decoding it gives the manifest the same row.
    """
    record = {
        "bytes": None, "sha256": "", "format": "", "width": None, "height": None,
        "channels": None, "status": "kept", "reason": "",
    }  # fmt: skip
    unknown = set(values) - set(record)
    if unknown:
        raise ValueError(
            f"blank_record got unknown keys {sorted(unknown)}; allowed: {list(record)}."
        )
    record.update(values)
    return record


def _mark(record: dict, status: str, reason: str) -> dict:
    record.update(status=status, reason=reason)
    return record


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


def _decode_with_pillow(data: bytes, image_format: str) -> np.ndarray | None:
    """Fallback decoder for what OpenCV refuses; same layout as ``_decode``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_with_pillow(data, image_format) as image:
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
