"""Which files are photos, and how each opens: Pillow's formats, HEIC/HEIF (pillow-heif)
and camera RAW (rawpy/libraw).

:func:`photo_extensions` is the one list of extensions a folder scan takes, derived from
the decoders themselves. HEIC/HEIF opens through Pillow once :func:`register_heif` has run (libheif applies the
file's rotation while decoding, so the image comes upright). A camera RAW file is never
given to Pillow (many are TIFF-like and would open as their thumbnail): :func:`load_raw`
takes the preview JPEG the camera embedded when there is one, else develops the sensor
data at half size. Heavy libraries are imported only when such a file is met.
"""

from __future__ import annotations

import functools
import io
import math
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

#: Camera RAW files, read with libraw (which tells the make by the content, not the name).
RAW_EXTENSIONS = frozenset({
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
    ".rw2", ".rwl", ".raw", ".pef", ".srw", ".3fr", ".fff", ".iiq", ".x3f", ".mrw", ".kdc",
    ".dcr", ".erf", ".mef", ".mos",
})
#: Formats Pillow opens whose files a folder scan passes over: not photographs (icons,
#: cursors, game textures, brushes, X bitmaps), a video whose header alone Pillow reads
#: (MPEG), or pages that need Ghostscript (EPS). Named on the command line, they are tried.
NOT_PHOTO_FORMATS = frozenset({"ICO", "CUR", "ICNS", "BLP", "DDS", "FTEX", "GBR", "XBM",
                               "XPM", "MPEG", "EPS"})

_heif_registered = False

#: Images whose declared size would need absurd memory to decode are refused (pixels).
MAX_PIXELS = 180_000_000
_OPENING = threading.Lock()


def is_raw(path: str | os.PathLike) -> bool:
    """True when ``path`` names a camera RAW file (by extension, any case)."""
    return os.path.splitext(os.fspath(path))[1].lower() in RAW_EXTENSIONS


@functools.cache
def photo_extensions() -> frozenset[str]:
    """The extensions (lower case, with the dot) of the files a folder scan takes: those
    Pillow's plugins and pillow-heif's register for a format they can open and decode
    themselves (stubs that need an outside handler, save-only formats and
    :data:`NOT_PHOTO_FORMATS` left out), and :data:`RAW_EXTENSIONS`."""
    from PIL import Image, ImageFile

    Image.init()
    register_heif()

    def decodes(fmt: str) -> bool:
        if fmt == "MPO":  # multi-picture JPEGs: Pillow's JPEG opener returns them
            return True
        factory = Image.OPEN.get(fmt, (None,))[0]
        stub = isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)
        return factory is not None and not stub and fmt not in NOT_PHOTO_FORMATS

    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if decodes(fmt)) | RAW_EXTENSIONS


def register_heif() -> None:
    """Let Pillow open HEIC/HEIF files (idempotent; each decoding process calls it)."""
    global _heif_registered
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True


def open_image(path: str | os.PathLike) -> Image.Image:
    """``Image.open`` (the header only) that also knows HEIC/HEIF, with memo's pixel limit
    instead of Pillow's (not for camera RAW: see :func:`load_raw`).

    Pillow warns above ~89 MP and refuses above twice that, by its process-wide
    ``Image.MAX_IMAGE_PIXELS``; memo refuses above :data:`MAX_PIXELS`
    (``DecompressionBombError``) and stays quiet below. Pillow's check is off only while
    the header is read (under a lock, then restored): importing or using memo changes no
    setting of the process.
    """
    from PIL import Image

    register_heif()
    with _OPENING:
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            img = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    width, height = img.size
    if width * height > MAX_PIXELS:
        img.close()
        raise Image.DecompressionBombError(f"{width}x{height} pixels")
    return img


def draft_jpeg(img: Image.Image, min_side: int | None) -> None:
    """Ask a not-yet-decoded JPEG for a DCT-scaled version whose sides stay at least
    1.5 x ``min_side`` (much faster than decoding a 12 MP photo in full and shrinking it;
    the margin keeps the final resize, and so the score, within 0.01 of a full decode's).
    Other formats, or no ``min_side``: nothing changes."""
    if min_side and img.format == "JPEG":
        w, h = img.size
        scale = min(w, h) / (1.5 * min_side)
        if scale >= 2:
            img.draft("RGB", (math.ceil(w / scale), math.ceil(h / scale)))


def _upright(image: Image.Image, flip: int) -> Image.Image:
    """``image`` turned as its own EXIF orientation says, else as libraw's ``flip`` says
    (3: upside down, 5: turned left, 6: turned right)."""
    from PIL import Image, ImageOps

    if image.getexif().get(0x0112, 1) != 1:
        return ImageOps.exif_transpose(image)
    turn = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90,
            6: Image.Transpose.ROTATE_270}.get(flip)
    return image.transpose(turn) if turn is not None else image


def load_raw(path: str | os.PathLike, min_side: int | None = None) -> Image.Image:
    """A camera RAW file as an upright RGB image.

    The embedded preview JPEG (or bitmap) when the file has one (JPEGs are decoded at a
    reduced size when ``min_side`` allows, as in :func:`memocli.decode.load_image`); else the
    sensor data developed at half size with the camera's white balance.

    Raises:
        OSError: the file is not a RAW file libraw can read.
    """
    import rawpy
    from PIL import Image

    try:
        with rawpy.imread(os.fspath(path)) as raw:
            flip = raw.sizes.flip
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                preview = Image.open(io.BytesIO(thumb.data))
                draft_jpeg(preview, min_side)
                return _upright(preview, flip).convert("RGB")
            if thumb is not None:
                return _upright(Image.fromarray(thumb.data), flip).convert("RGB")
            pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            return Image.fromarray(pixels).convert("RGB")  # postprocess applies the flip
    except rawpy.LibRawError as e:
        raise OSError(f"not a camera RAW file libraw can read ({libraw_reason(e)})") from None


def libraw_reason(error: Exception) -> str:
    """libraw's message as text: rawpy passes it as bytes (``b'Input/output error'``)."""
    message = error.args[0] if error.args else ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip() or type(error).__name__


def raw_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """Upright width and height of a RAW file's full image (header only), or None."""
    import rawpy

    try:
        with rawpy.imread(os.fspath(path)) as raw:
            w, h, flip = raw.sizes.width, raw.sizes.height, raw.sizes.flip
    except rawpy.LibRawError:
        return None
    return (h, w) if flip in (5, 6) else (w, h)
