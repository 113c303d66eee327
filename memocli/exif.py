"""What a photo's file says about it: upright width/height, date taken and camera (EXIF).

Headers are read (Pillow for the size, exifread for the EXIF tags), and, for a picture
without a camera's name, a thumbnail of the pixels (:func:`memocli.kinds.kind_of`).
Metadata is a nice-to-have: a file whose header cannot be parsed gets ``None`` fields here,
and the decoder reports the real problem when the image is scored.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime

from PIL import Image

from . import photo_warnings
from .cache import ImageMeta
from .formats import is_raw, open_image, raw_size
from .kinds import PHOTO, kind_of

log = logging.getLogger(__name__)

# exifread logs a warning for every file without EXIF (PNG, GIF, ...): that is not news.
logging.getLogger("exifread").setLevel(logging.ERROR)

# EXIF orientations 5-8 are rotated by 90 degrees: the upright image is height x width.
_TRANSPOSED = {5, 6, 7, 8}
_EXIF_DATE = re.compile(r"^\s*(\d{4})[:-](\d{2})[:-](\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2}))?")


def parse_exif_date(text: str | None) -> str | None:
    """``'2019:07:14 18:03:22'`` -> ``'2019-07-14T18:03:22'``; None if blank or malformed.

    The date must be a real calendar date and the time a real time of day (``2019:02:30``,
    day or month ``00``, month ``13``, ``24:00:00`` or second ``60`` are not): an impossible
    date is None, a real date with an impossible time is the date alone. Cameras write
    ``0000:00:00 00:00:00`` or spaces when the clock was unset: those are None.
    """
    if not text:
        return None
    m = _EXIF_DATE.match(str(text))
    if not m:
        return None
    year, month, day, *clock = (int(g) if g else None for g in m.groups())
    try:
        taken = datetime(year, month, day)
    except ValueError:
        return None
    try:
        return taken.replace(hour=clock[0], minute=clock[1], second=clock[2]).isoformat()
    except (TypeError, ValueError):  # no time, or an impossible one
        return taken.date().isoformat()


def _clean_text(value: object) -> str:
    """An EXIF text field on one line: control characters (NUL padding, escape sequences)
    become spaces, runs of spaces one."""
    text = str(value or "")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def camera_name(make: str | None, model: str | None) -> str | None:
    """One camera name from EXIF make and model, without saying the maker twice.

    ``('Canon', 'Canon EOS 5D')`` -> ``'Canon EOS 5D'``; ``('SONY', 'ILCE-7')`` ->
    ``'SONY ILCE-7'``.
    """
    make, model = _clean_text(make), _clean_text(model)
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(p for p in (make, model) if p) or None


def _exif_tags(f) -> dict:
    import exifread

    return exifread.process_file(f, details=False, extract_thumbnail=False,
                                 builtin_types=True)


def _pillow_tags(img: Image.Image) -> dict:
    """The EXIF tags memo uses, as exifread names them, from Pillow's reading of ``img``
    (for files exifread cannot parse, such as many HEICs)."""
    exif = img.getexif()
    sub = exif.get_ifd(0x8769)
    named = {"Image Make": exif.get(0x010F), "Image Model": exif.get(0x0110),
             "Image DateTime": exif.get(0x0132), "EXIF DateTimeOriginal": sub.get(0x9003),
             "EXIF DateTimeDigitized": sub.get(0x9004)}
    return {k: v for k, v in named.items() if v}


def read_image_meta(path: str | os.PathLike) -> ImageMeta:
    """Upright size, date taken (``DateTimeOriginal``, else ``DateTime``) and camera.

    HEIC/HEIF files come upright from their decoder; a camera RAW file's size is its full
    image's (from libraw), not its preview's. A library warning about the file names it
    (:mod:`memocli.photo_warnings`).
    """
    with photo_warnings.reading(path):
        return _read_image_meta(path)


def _read_image_meta(path: str | os.PathLike) -> ImageMeta:
    width = height = orientation = None
    kind = PHOTO  # RAW files, and files whose header cannot be read (the decoder reports them)
    try:
        with open(path, "rb") as f:
            try:
                tags = _exif_tags(f)
            except Exception as e:  # noqa: BLE001 - exifread raises anything on odd files
                log.debug("%s: no EXIF (%s: %s)", path, type(e).__name__, e)
                tags = {}
        if is_raw(path):
            width, height = raw_size(path) or (None, None)
        else:
            try:
                with open_image(path) as img:
                    width, height = img.size
                    orientation = img.getexif().get(0x0112)  # what exif_transpose applies
                    tags = tags or _pillow_tags(img)
                    kind = kind_of(img, width, height, _camera(tags))
            except Exception as e:  # noqa: BLE001 - decoders raise anything (memocli.decode)
                log.debug("%s: no image header (%s: %s)", path, type(e).__name__, e)
    except OSError as e:
        log.debug("%s: unreadable (%s)", path, e)
        tags = {}
    taken_at = parse_exif_date(tags.get("EXIF DateTimeOriginal")
                               or tags.get("EXIF DateTimeDigitized")
                               or tags.get("Image DateTime"))
    if isinstance(orientation, int) and orientation in _TRANSPOSED and width is not None:
        width, height = height, width
    return ImageMeta(width=width, height=height, taken_at=taken_at, camera=_camera(tags),
                     kind=kind)


def _camera(tags: dict) -> str | None:
    return camera_name(tags.get("Image Make"), tags.get("Image Model"))
