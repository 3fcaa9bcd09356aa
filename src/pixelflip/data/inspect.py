"""Per-file inspection: what a member of the raw archive is and whether a model can use it.

Each file gets a status:

- ``kept``: a readable image already in the requested colour mode;
- ``converted``: a readable image that needed a conversion (colour mode, alpha, 16-bit depth,
  or content in another format than its extension says); the reason says which;
- ``quarantined``: an image file that cannot be used (empty, undecodable, too small);
- ``skipped``: not an image file at all.

Reasons read ``"<kind>: <detail>"`` (or just ``"<kind>"``), so counting the text before ``":"``
groups them.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import cv2
import numpy as np

from pixelflip.data.archive import file_extension, is_image_name

STATUSES = ("kept", "converted", "quarantined", "skipped")
USED_STATUSES = ("kept", "converted")
COLOR_MODES = ("grayscale", "rgb")

_EXTENSION_FORMATS = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".png": "png",
    ".bmp": "bmp",
    ".gif": "gif",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
_TARGET_MODE_NAMES = {"grayscale": "greyscale", "rgb": "RGB"}


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
    data: bytes, *, name: str, min_side: int, color_mode: str = "rgb"
) -> tuple[dict, np.ndarray | None]:
    """Inspect one file's bytes and decode it into the requested colour mode.

    Args:
        data: the file's content.
        name: the file (member) name; its extension decides whether this is an image file.
        min_side: images whose shorter side is below this many pixels are quarantined.
        color_mode: ``"grayscale"`` or ``"rgb"``, the colour mode the pipeline trains in.

    Returns:
        ``(record, image)``. ``record`` has keys ``bytes, sha256, format, width, height,
        channels, status, reason`` (width, height and channels of the decoded original, None
        when it was not decoded). ``image`` is uint8 in [0, 255], shape (height, width, 1) for
        grayscale or (height, width, 3) RGB, for ``kept`` and ``converted`` files; else None.
    """
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {list(COLOR_MODES)}, got {color_mode!r}.")
    require_positive_int("min_side", min_side)

    record = {
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": sniff_format(data),
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

    pixels, problem = _decode(data, record["format"])
    if pixels is None:
        return _mark(record, "quarantined", f"cannot decode: {problem}"), None
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    record.update(width=int(width), height=int(height), channels=int(channels))
    if min(width, height) < min_side:
        return _mark(record, "quarantined", f"too small: {width}x{height} < {min_side}"), None

    is_palette = record["format"] == "gif" or (
        record["format"] == "png" and len(data) > 25 and data[25] == 3
    )
    image, conversions = _to_color_mode(pixels, color_mode, is_palette)
    expected_format = _EXTENSION_FORMATS[extension]
    if record["format"] != expected_format:
        conversions.append(f"{record['format']} data named {extension}")
    if conversions:
        return _mark(record, "converted", ", ".join(conversions)), image
    return record, image


def require_positive_int(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is an integer of at least 1 (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _mark(record: dict, status: str, reason: str) -> dict:
    record.update(status=status, reason=reason)
    return record


def _decode(data: bytes, image_format: str) -> tuple[np.ndarray | None, str]:
    """Decode to an array with channels in RGB(A) order; ``(None, why)`` when impossible.

    OpenCV reads most formats quickly; Pillow covers the ones an OpenCV build may lack (GIF).
    Messages are fixed strings so the manifest is identical between runs.
    """
    pixels = None
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        pixels = None
    if pixels is not None and pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        pixels = cv2.cvtColor(pixels, code)
    if pixels is None:
        pixels = _decode_with_pillow(data)
    if pixels is None:
        what = "unknown format" if image_format == "unknown" else f"corrupt {image_format} data"
        return None, what
    if pixels.dtype not in (np.uint8, np.uint16):
        return None, f"unsupported pixel type {pixels.dtype}"
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.size == 0 or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        return None, f"unsupported shape {pixels.shape}"
    return pixels, ""


def _decode_with_pillow(data: bytes) -> np.ndarray | None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if image.mode in ("P", "PA"):
                    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                    image = image.convert("L" if image.mode == "1" else "RGB")
                elif image.mode.startswith("I;16"):
                    return np.asarray(image, dtype=np.uint16)
                return np.asarray(image)
    except Exception:  # noqa: BLE001 - any Pillow failure means "cannot decode"
        return None


def _to_color_mode(
    pixels: np.ndarray, color_mode: str, is_palette: bool
) -> tuple[np.ndarray, list[str]]:
    """Convert decoded pixels to uint8 (H, W, 1) or (H, W, 3); list the conversions made."""
    conversions = []
    if pixels.dtype == np.uint16:
        # 65535 / 257 = 255 exactly, so the full range maps onto the full range.
        pixels = np.rint(pixels / 257.0).astype(np.uint8)
        conversions.append("16-bit to 8-bit")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    source_mode = {1: "greyscale", 2: "greyscale+alpha", 3: "RGB", 4: "RGBA"}[channels]
    if is_palette:
        source_mode = "palette"
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
