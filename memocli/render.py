"""Drawing Grad-CAM maps with OpenCV: upsampling, colour map, blend, the score label.

The map is upsampled bilinearly straight to the photo's own, EXIF-upright resolution (the
network input is a squash-resize of the whole photo, so this is the exact inverse mapping),
coloured with ``COLORMAP_JET`` (red = raises memorability, blue = does not) and
alpha-blended over the photo. ``memo explain`` and ``memo report`` both draw with it.
Arrays are ``uint8``: photos RGB in, pictures BGR out (OpenCV's order).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 92


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``[h, w]`` map in [0, 1] to ``size = (width, height)``."""
    import cv2

    heat = cv2.resize(np.ascontiguousarray(cam, dtype=np.float32), size,
                      interpolation=cv2.INTER_LINEAR)
    return np.clip(heat, 0.0, 1.0)


def heatmap_gray(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The map at ``size = (width, height)`` as 8-bit grayscale (255 = the peak)."""
    return np.round(upsample(cam, size) * 255).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the JET-coloured map over an RGB ``uint8`` photo; returns BGR ``uint8``.

    ``alpha`` is the heatmap's weight (0: the photo only, 1: the heatmap only).
    """
    import cv2

    height, width = image.shape[:2]
    colored = cv2.applyColorMap(heatmap_gray(cam, (width, height)), cv2.COLORMAP_JET)
    photo = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.addWeighted(colored, alpha, photo, 1.0 - alpha, 0.0)


def _thickness(scale: float) -> int:
    return max(1, round(scale * 2))


def _font_scale(text: str, height_px: float, max_width: int) -> float:
    """Hershey font scale giving text ``height_px`` tall, shrunk to fit ``max_width``."""
    import cv2

    (w1, h1), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, _thickness(1.0))
    return max(0.2, min(height_px / h1, max_width / w1))


def draw_label(img: np.ndarray, text: str, box: tuple[int, int, int, int] | None = None) -> None:
    """Write ``text`` in white, sized to the image, on a dark box (in place, BGR).

    ``box = (x, y, w, h)``: centre the text in that region (a band); default: a dark patch
    in the top-left corner of ``img`` whose text is ~5% of the shorter side tall.
    """
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    height, width = img.shape[:2]
    if box is None:
        margin = max(2, round(min(height, width) * 0.02))
        scale = _font_scale(text, max(8.0, min(height, width) * 0.05), width - 4 * margin)
    else:
        margin = 0
        scale = _font_scale(text, box[3] * 0.5, int(box[2] * 0.95))
    thick = _thickness(scale)
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    if box is None:
        x0, y0 = margin, margin
        pad = max(2, th // 3)
        x1, y1 = min(width, x0 + tw + 2 * pad), min(height, y0 + th + base + 2 * pad)
        patch = img[y0:y1, x0:x1]
        patch[:] = (patch * 0.35).astype(np.uint8)  # darken, keep a hint of what is under
        org = (x0 + pad, y0 + pad + th)
    else:
        bx, by, bw, bh = box
        org = (bx + (bw - tw) // 2, by + (bh + th) // 2)
    cv2.putText(img, text, org, font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def explain_picture(image: np.ndarray, cam: np.ndarray, score: float, alpha: float = 0.5,
           side_by_side: bool = False) -> np.ndarray:
    """The explain picture (BGR ``uint8``) for an RGB photo and its normalised map.

    Overlay at the photo's size with the score in its corner, or with ``side_by_side``
    the photo | overlay, with the score in a band underneath.
    """
    import cv2

    blended = overlay(image, cam, alpha)
    label = f"memorability {score:.2f}"
    if not side_by_side:
        draw_label(blended, label)
        return blended
    height, width = image.shape[:2]
    band = max(16, round(min(height, width) * 0.1))
    canvas = np.full((height + band, 2 * width, 3), 32, dtype=np.uint8)
    canvas[:height, :width] = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    canvas[:height, width:] = blended
    draw_label(canvas, label, box=(0, height, 2 * width, band))
    return canvas


def encode_jpeg(bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """A BGR picture as JPEG bytes."""
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(gray: np.ndarray, info: dict[str, str]) -> bytes:
    """A grayscale map as PNG bytes, with ``info`` as text chunks."""
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()
