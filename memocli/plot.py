"""A minimal line plot with a log-scaled x axis, drawn with OpenCV (for lr-find)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from .files import atomic_write


def plot_log_x(path: str | os.PathLike, xs: Sequence[float], ys: Sequence[float],
               title: str, x_label: str, y_label: str, marker_x: float | None = None) -> None:
    """Save a PNG of ``ys`` against ``log10(xs)``, with an optional vertical marker
    (written as every memo output is: :func:`memocli.files.atomic_write`)."""
    import cv2
    import numpy as np

    w, h, left, right, top, bottom = 800, 500, 90, 20, 40, 60
    img = np.full((h, w, 3), 255, np.uint8)
    points = [(math.log10(x), y) for x, y in zip(xs, ys) if x > 0 and math.isfinite(y)]
    if len(points) < 2:
        raise ValueError("need at least two finite points to plot")
    lx0, lx1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    y1 = y1 if y1 > y0 else y0 + 1e-9

    def to_px(lx: float, y: float) -> tuple[int, int]:
        px = left + (lx - lx0) / (lx1 - lx0 or 1) * (w - left - right)
        py = h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)
        return int(px), int(py)

    black, grey, font = (0, 0, 0), (200, 200, 200), cv2.FONT_HERSHEY_SIMPLEX
    for decade in range(math.ceil(lx0), math.floor(lx1) + 1):
        x, _ = to_px(decade, y0)
        cv2.line(img, (x, top), (x, h - bottom), grey, 1)
        cv2.putText(img, f"1e{decade}", (x - 18, h - bottom + 20), font, 0.45, black, 1)
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        _, py = to_px(lx0, y)
        cv2.line(img, (left, py), (w - right, py), grey, 1)
        cv2.putText(img, f"{y:.3g}", (28, py + 5), font, 0.45, black, 1)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), black, 1)
    line = np.array([to_px(lx, y) for lx, y in points], np.int32)
    cv2.polylines(img, [line], False, (200, 80, 0), 2, cv2.LINE_AA)
    if marker_x and marker_x > 0:
        mx, _ = to_px(math.log10(marker_x), y0)
        cv2.line(img, (mx, top), (mx, h - bottom), (0, 0, 220), 1)
        cv2.putText(img, f"{marker_x:.2g}", (mx + 4, top + 16), font, 0.5, (0, 0, 220), 1)
    (title_w, _), _ = cv2.getTextSize(title, font, 0.6, 1)
    cv2.putText(img, title, ((w - title_w) // 2, 25), font, 0.6, black, 1)
    (label_w, _), _ = cv2.getTextSize(x_label, font, 0.5, 1)
    cv2.putText(img, x_label, (left + (w - left - right - label_w) // 2, h - 15), font, 0.5,
                black, 1)
    _vertical_text(img, y_label, x=4, y_middle=top + (h - top - bottom) // 2)
    ok, png = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("OpenCV could not encode the plot as PNG")
    with atomic_write(path) as f:
        f.write(png.tobytes())


def _vertical_text(img, text: str, x: int, y_middle: int) -> None:
    """Draw ``text`` reading bottom to top (a y-axis label) with its left edge at ``x``."""
    import cv2
    import numpy as np

    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    strip = np.full((th + base + 4, tw + 4, 3), 255, np.uint8)
    cv2.putText(strip, text, (2, th + 2), font, scale, (0, 0, 0), 1)
    turned = np.ascontiguousarray(np.rot90(strip))  # counter-clockwise: reads upwards
    top = max(0, y_middle - turned.shape[0] // 2)
    part = turned[: img.shape[0] - top, : img.shape[1] - x]
    img[top:top + part.shape[0], x:x + part.shape[1]] = part
