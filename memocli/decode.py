"""Decoding a photo file into the upright RGB image every model sees, and the boundary
where a decoder's failure becomes that file's one-line reason.

:func:`load_image` is the decode rule scoring, training, reports and Grad-CAM share.
:func:`try_decode` and :func:`header_failure` are the only places decoders are called
from a run: whatever Pillow, pillow-heif, Pillow's AVIF plugin or libraw raise on a hostile
file (``OSError``, ``ValueError``, ``RuntimeError``, ``EOFError``, ...) is caught there and
said as one line, so a file that cannot be decoded never ends a run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from PIL import Image, ImageOps

from . import photo_warnings
from .files import read_failure
from .formats import MAX_PIXELS, draft_jpeg, is_raw, load_raw, open_image
from .pixel_budget import DECODE_BUDGET

log = logging.getLogger(__name__)

_REDUCED = "memo.reduced"  # Image.info key: decoded below full resolution (JPEG draft)


def load_image(path: str | os.PathLike, min_side: int | None = None) -> Image.Image:
    """Decode an image as upright RGB.

    EXIF orientation is applied; JPEGs are decoded at a reduced size when ``min_side``
    allows (:func:`~memocli.formats.draft_jpeg`; :func:`is_reduced` tells). HEIC/HEIF and
    camera RAW files are read as :mod:`memocli.formats` says. Decoding waits for its pixels
    in the shared :data:`~memocli.pixel_budget.DECODE_BUDGET` (RAW files excepted: their
    size is known only once decoded), and a library warning about the file (corrupt EXIF)
    names it (:mod:`memocli.photo_warnings`).

    Raises:
        Exception: whatever the decoder raises; a run calls :func:`try_decode`.
    """
    if is_raw(path):
        with photo_warnings.reading(path):
            image = load_raw(path, min_side)
        image.info[_REDUCED] = bool(min_side)  # its preview may have been drafted
        return image
    with photo_warnings.reading(path), open_image(path) as img:
        full_size = img.size
        draft_jpeg(img, min_side)
        reduced = img.size != full_size
        with DECODE_BUDGET.claim(img.width * img.height):
            rgb = _upright_rgb(img)
    rgb.info[_REDUCED] = reduced
    return rgb


def _upright_rgb(img: Image.Image) -> Image.Image:
    """``img`` decoded, EXIF orientation applied, as RGB (transparency on white; a channel
    of more than 8 bits by its real range, :func:`_deep_to_gray`)."""
    deep = _sample_type(img) if img.mode.startswith(("I", "F")) else None
    img = ImageOps.exif_transpose(img)
    if deep is not None:
        return _deep_to_gray(img, *deep).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
        return rgb
    return img.convert("RGB")


def _sample_type(img: Image.Image) -> tuple[int, bool]:
    """``(bits, signed)`` of a one-channel image of more than 8 bits (Pillow's modes ``I``,
    ``I;16...`` and ``F``): as its TIFF tags say (BitsPerSample, SampleFormat), else as its
    mode says (``I;16S``: 16 signed), else the fewest of 16 or 32 bits that hold its values."""
    tags = getattr(img, "tag_v2", {})
    bits = tags.get(258, (None,))[0] if tags.get(258) else None
    if bits is None:
        if img.mode == "I":
            bits = 16 if img.getextrema()[1] < 1 << 16 else 32
        else:
            bits = 32 if img.mode in ("F", "I;32") else 16
    signed = tags.get(339, (1,))[0] == 2 if tags.get(339) else img.mode.endswith("S")
    return bits, signed


def _deep_to_gray(img: Image.Image, bits: int, signed: bool) -> Image.Image:
    """A channel of more than 8 bits as 8-bit gray, its real range spread over 0-255.

    Integers by their sample type: unsigned 0 to 2**bits - 1, signed 0 to the largest
    positive value (negative values are black), so 16-bit ``v`` is ``v // 256`` as before.
    Floats (mode ``F``) are 0-1, the range float images are written in, unless their
    values leave it (HDR, measurements): then from their lowest to their highest value;
    NaN is black.
    """
    import numpy as np

    values = np.asarray(img)
    if img.mode == "F":
        finite = values[np.isfinite(values)]
        low, high = 0.0, 1.0
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            low, high = float(finite.min()), float(finite.max())
        values = np.nan_to_num(values.astype(np.float64), nan=low, posinf=high, neginf=low)
        share = (values - low) / (high - low or 1.0)
    else:
        if not signed and values.dtype == np.int32:  # Pillow keeps uint32 in int32
            values = values.view(np.uint32)
        share = values.astype(np.float64) / 2.0 ** (bits - signed)
    return Image.fromarray(np.clip(share * 256, 0, 255).astype(np.uint8), "L")


def is_reduced(image: Image.Image) -> bool:
    """Whether :func:`load_image` decoded ``image`` below the file's full resolution."""
    return bool(image.info.get(_REDUCED))


def try_decode(load: Callable[[], Image.Image],
               path: str | os.PathLike) -> tuple[Image.Image | None, str | None]:
    """``(load(), None)``, or ``(None, reason)`` when the decoder ``load`` (a call of
    :func:`load_image` or of a Predictor's ``load_photo`` on ``path``) raised anything
    (:func:`describe_decode_error`)."""
    try:
        return load(), None
    except Exception as e:  # noqa: BLE001 - a decoder may raise anything on a hostile file
        return None, describe_decode_error(e, path)


def header_failure(path: str | os.PathLike) -> str | None:
    """Why the header of the image at ``path`` cannot be read, or None if it reads."""
    try:
        open_image(path).close()
    except Exception as e:  # noqa: BLE001 - as in try_decode
        return describe_decode_error(e, path)
    return None


def describe_decode_error(error: Exception, path: str | os.PathLike | None = None) -> str:
    """A short, user-facing reason for an image that could not be decoded (one line); an
    error no decoder is documented to raise is also logged, with its traceback, at debug
    level (``-vv``) under ``path``."""
    if isinstance(error, Image.DecompressionBombError):
        limit = MAX_PIXELS // 1_000_000
        return f"refused: image too large to decode safely (over {limit} megapixels)"
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return read_failure(error)
    if isinstance(error, Image.UnidentifiedImageError):
        return "not a recognised image format"
    if not isinstance(error, (OSError, SyntaxError, ValueError)):
        log.debug("%s: %s from the decoder", path, type(error).__name__, exc_info=error)
    lines = str(error).strip().splitlines()
    return f"cannot decode image: {lines[0] if lines else type(error).__name__}"
