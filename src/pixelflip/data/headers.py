"""Read an image's format, size, mode and orientation from its first bytes, without decoding pixels.

``sniff_format`` names the format from the magic number, whatever the file's name says.
``read_header`` parses the header: JPEG (marker segments, EXIF orientation, end marker) and PNG
(IHDR) here, the other formats through Pillow's lazy header reader. Nothing here decodes pixel
data, so a decompression bomb can be refused from its header alone.
"""

from __future__ import annotations

import importlib
import io
import struct
from dataclasses import dataclass

# The formats ``sniff_format`` names; anything else reads "unknown".
IMAGE_FORMATS = ("jpeg", "png", "bmp", "gif", "webp", "tiff")

_JPEG_MODES = {1: "greyscale", 3: "RGB", 4: "CMYK"}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
_PNG_PALETTE_COLOR_TYPE = 3
# Pillow's plugin for each format, e.g. PIL.BmpImagePlugin.BmpImageFile.
_PILLOW_PLUGINS = {"bmp": "Bmp", "gif": "Gif", "jpeg": "Jpeg", "png": "Png", "tiff": "Tiff",
                   "webp": "WebP"}  # fmt: skip
# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xDA)])
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, before any pixel is decoded.

    Attributes:
        width: width in pixels of the upright image (EXIF orientation applied); None when the
            header could not be read.
        height: height in pixels of the upright image; None when the header could not be read.
        channels: channels of the stored image (1 grey, 2 grey with alpha, 3 colour or palette,
            4 colour with alpha or CMYK); None when unknown.
        source_mode: the stored colour mode where the decoded pixels will not show it:
            ``"greyscale"``, ``"RGB"`` or ``"CMYK"`` for a JPEG, ``"palette"`` for a palette PNG
            or a GIF; None otherwise.
        orientation: the EXIF orientation (1-8) a JPEG is stored in; 1 means upright.
        trailing_bytes: how many bytes follow a JPEG's end marker.
        problem: a full quarantine reason (``"<kind>: <detail>"``) when the file cannot be
            decoded; empty otherwise.
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

    Returns one of ``IMAGE_FORMATS`` (``"jpeg", "png", "bmp", "gif", "webp", "tiff"``) or
    ``"unknown"``.
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


def read_header(data: bytes, image_format: str, extension: str) -> ImageHeader:
    """Dimensions, colour layout and orientation from the header alone; never decodes pixels.

    Args:
        data: the file's content, non-empty.
        image_format: the content's format, as ``sniff_format`` names it.
        extension: the file name's extension (e.g. ``".jpg"``), quoted in the reason when the
            content is HTML.

    Returns:
        An ``ImageHeader``; its ``problem`` is set (and the size may be None) when the header is
        missing, truncated or unreadable, so this never raises on bad data.
    """
    if image_format == "jpeg":
        return _read_jpeg_header(data)
    if image_format == "png":
        if len(data) < 33 or data[12:16] != b"IHDR":
            return ImageHeader(problem="cannot decode: corrupt png data")
        width, height = struct.unpack_from(">II", data, 16)
        color_type = data[25]
        source_mode = "palette" if color_type == _PNG_PALETTE_COLOR_TYPE else None
        return ImageHeader(width, height, _PNG_CHANNELS.get(color_type), source_mode)
    if image_format == "unknown":
        start = data[:1024].lstrip().lower()
        if b"<html" in start or start.startswith(b"<!doctype html"):
            return ImageHeader(problem=f"cannot decode: html data named {extension}")
        return ImageHeader(problem="cannot decode: unknown format")
    try:
        with open_with_pillow(data, image_format) as image:
            bands = len(image.getbands())
            # A palette index stands for an RGB colour.
            channels = bands + 2 if image.mode in ("P", "PA") else bands
            source_mode = "palette" if image_format == "gif" else None
            return ImageHeader(image.width, image.height, channels, source_mode)
    except Exception:  # noqa: BLE001 - any Pillow failure means the header is unreadable
        return ImageHeader(problem=f"cannot decode: corrupt {image_format} data")


def open_with_pillow(data: bytes, image_format: str):
    """Open lazily (header only) with the format's own Pillow plugin.

    Calling the plugin class directly skips ``Image.open``'s decompression-bomb check, whose
    global limit is not ours to change: the caller checks its pixel limit from the header.

    Args:
        data: the file's content.
        image_format: one of ``IMAGE_FORMATS``.

    Returns:
        The plugin's ``PIL.ImageFile.ImageFile``, pixels not yet loaded; use it as a context
        manager.

    Raises:
        KeyError: if ``image_format`` is not one of ``IMAGE_FORMATS``.
        Exception: whatever the plugin raises on a header it cannot read (Pillow raises several
            types); callers treat any of them as unreadable data.
    """
    name = _PILLOW_PLUGINS[image_format]
    plugin = importlib.import_module(f"PIL.{name}ImagePlugin")
    return getattr(plugin, f"{name}ImageFile")(io.BytesIO(data))


def _read_jpeg_header(data: bytes) -> ImageHeader:
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
        return ImageHeader(problem=problem or "cannot decode: JPEG has no valid frame header")
    if orientation >= 5:
        frame = (frame[1], frame[0], *frame[2:])
    if problem:
        return ImageHeader(*frame, orientation, problem=problem)
    return ImageHeader(*frame, orientation, trailing_bytes=size - end)


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
