"""What kind of picture a file is: a photo, or an icon, a blank image, a screenshot or a
drawing (clip art, a scanned or printed document), which memo keeps out of the photo ranking.

Cheap signals first, in this order:

1. **icon**: the image is tiny (its long side under :data:`TINY_SIDE` pixels): favicons,
   icons, thumbnails.
2. **photo**: the file names the camera that took it (EXIF make or model).
3. The pixels of a :data:`STATS_SIDE`-pixel thumbnail (:func:`pixel_stats`, on levels
   stretched to the full range so that exposure does not count):
   a logistic regression over six statistics (:data:`STATS`) trained on generated
   drawings, documents and screenshots against pool and LNSIM photos
   (``scripts/train_kinds.py``; weights in ``kinds.json``) gives the odds of a non-photo.
   A PNG (or WebP, BMP, GIF) of a phone's or monitor's screen size is a **screenshot** at
   lower odds (``screen_threshold``) or when blank; a nearly uniform picture is **blank**;
   other pictures above ``threshold`` are **drawings** (clip art, documents).

Torch-free: it runs while hashing, on the image Pillow already opened for the header.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

    from .score import ScoredFile

PHOTO, ICON, BLANK, SCREENSHOT, DRAWING = "photo", "icon", "blank", "screenshot", "drawing"
KINDS = (PHOTO, ICON, BLANK, SCREENSHOT, DRAWING)
#: How the summary line names one file of each kind that is not a photo.
KIND_NOUNS = {ICON: ("icon", "icons"), BLANK: ("blank image", "blank images"),
              SCREENSHOT: ("screenshot", "screenshots"),
              DRAWING: ("drawing or document", "drawings or documents")}

TINY_SIDE = 100  # px: a long side under this is an icon (bigger icons are flat: drawings)
STATS_SIDE = 128  # px: the thumbnail the pixel statistics are taken on
BLANK_SPREAD = 3.0  # grey levels (of 255): a standard deviation under this is blank
MAX_STRETCH = 8.0  # the most the grey levels are stretched before the texture statistics
#: The pixel statistics of :func:`pixel_stats`; the classifier uses those kinds.json names.
STATS = ("spread", "flat", "smooth", "sharp", "palette", "colours")
#: Width x height of phone and monitor screens (either way up), for screenshots.
SCREEN_SIZES = frozenset({
    (640, 1136), (750, 1334), (828, 1792), (1080, 1920), (1080, 2340), (1080, 2400),
    (1125, 2436), (1170, 2532), (1179, 2556), (1242, 2208), (1242, 2688), (1284, 2778),
    (1290, 2796), (1440, 2560), (1440, 3200), (1536, 2048), (1620, 2160), (1668, 2388),
    (2048, 2732), (720, 1280), (720, 1600),
    (1280, 720), (1280, 800), (1366, 768), (1440, 900), (1536, 864), (1600, 900),
    (1680, 1050), (1920, 1080), (1920, 1200), (2560, 1440), (2560, 1600), (2880, 1800),
    (3024, 1964), (3456, 2234), (3840, 2160), (5120, 2880),
})
SCREEN_FORMATS = frozenset({"PNG", "WEBP", "BMP", "GIF"})


def is_screen_size(width: int, height: int) -> bool:
    """True for the size of a phone or monitor screen, either way up."""
    return (width, height) in SCREEN_SIZES or (height, width) in SCREEN_SIZES


def pixel_stats(img: Image.Image) -> dict[str, float]:
    """The :data:`STATS` of ``img`` on a thumbnail of at most :data:`STATS_SIDE` pixels.

    spread: standard deviation of the grey levels / 64. The others are taken after the grey
    levels are stretched to the full range (:func:`stretched`), so that a dark, hazy or
    flat-lit photo has the texture of a well-exposed one: flat, smooth, sharp: the shares
    of neighbouring pixel pairs that differ by at most 2 levels (flat colour), by 3-24
    (photographic texture, gradients) and by more than 64 (hard edges); palette: the share
    of pixels in the 8 commonest colours (16 levels a channel); colours: the share of those
    4,096 colours present.
    """
    import numpy as np
    from PIL import Image

    img.draft("RGB", (2 * STATS_SIDE, 2 * STATS_SIDE))  # JPEG: decode at reduced size
    small = img.convert("RGB")
    small.thumbnail((STATS_SIDE, STATS_SIDE), Image.Resampling.BOX)
    a = np.asarray(small, dtype=np.int16)  # [H, W, 3]
    grey = a.mean(axis=2)
    spread = grey.std() / 64
    a = stretched(a, grey)
    steps = np.concatenate([np.abs(np.diff(a, axis=1)).max(axis=2).ravel(),
                            np.abs(np.diff(a, axis=0)).max(axis=2).ravel()])
    if steps.size == 0:  # one pixel wide
        steps = np.zeros(1, dtype=np.int16)
    q = (a // 16).reshape(-1, 3)
    counts = np.bincount(q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2], minlength=4096)
    values = (spread, (steps <= 2).mean(),
              ((steps > 2) & (steps <= 24)).mean(), (steps > 64).mean(),
              np.sort(counts)[-8:].sum() / len(q), (counts > 0).mean())
    return {name: float(v) for name, v in zip(STATS, values, strict=True)}


def stretched(a, grey):
    """``a`` (``[H, W, 3]`` int16 levels) with the 1st-99th percentile of its ``grey``
    levels (``[H, W]``) mapped onto 0-255, by at most :data:`MAX_STRETCH` times (pictures
    already spanning the range, as drawings, documents and screenshots do, barely change)."""
    import numpy as np

    lo, hi = np.percentile(grey, (1, 99))
    gain = min(MAX_STRETCH, 255 / max(hi - lo, 1e-6))
    return np.clip(np.rint((a - lo) * gain), 0, 255).astype(np.int16)


def split_photos(files: Sequence[ScoredFile]) -> tuple[list[ScoredFile], dict[str, int]]:
    """The photos among ``files`` (a file of unknown kind counts as one), and how many of
    each other kind there are."""
    photos = [f for f in files if f.meta.kind in (PHOTO, None)]
    others = Counter(f.meta.kind for f in files if f.meta.kind not in (PHOTO, None))
    return photos, dict(others)


@functools.cache
def classifier() -> dict:
    """The logistic regression of ``kinds.json`` (``scripts/train_kinds.py`` writes it)."""
    return json.loads(resources.files("memocli").joinpath("kinds.json").read_text())


def non_photo_odds(stats: dict[str, float]) -> float:
    """The classifier's probability that a picture with these :data:`STATS` is not a photo."""
    model = classifier()
    z = model["bias"] + sum(w * (stats[name] - m) / s for name, w, m, s in zip(
        model["stats"], model["weights"], model["mean"], model["scale"], strict=True))
    return 1 / (1 + math.exp(-max(-60.0, min(60.0, z))))


def kind_of(img: Image.Image | None, width: int | None, height: int | None,
            camera: str | None) -> str:
    """The kind of a picture from its header facts and (when it could be opened) pixels.

    ``img`` is read (thumbnail only) when the header does not settle it.
    """
    if width is not None and height is not None and max(width, height) < TINY_SIDE:
        return ICON
    if camera or img is None:
        return PHOTO
    image_format = img.format
    try:
        stats = pixel_stats(img)
    except (OSError, ValueError, SyntaxError):  # the decoder will report it when scoring
        return PHOTO
    blank = stats["spread"] * 64 < BLANK_SPREAD
    odds = 1.0 if blank else non_photo_odds(stats)
    if (image_format in SCREEN_FORMATS and width is not None and height is not None
            and is_screen_size(width, height) and odds >= classifier()["screen_threshold"]):
        return SCREENSHOT
    if blank:
        return BLANK
    return DRAWING if odds >= classifier()["threshold"] else PHOTO

