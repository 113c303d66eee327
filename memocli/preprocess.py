"""The network input of a decoded photo, with PIL and numpy only (torch-free).

Pixel for pixel what :func:`memocli.data.eval_transform` (torchvision's ``Resize``,
``ToTensor``, ``Normalize``) gives: a bilinear, antialiased squash-resize by PIL (what
torchvision itself calls for a PIL image), then ``/ 255`` and ``(x - mean) / std`` in
float32, in that order (``tests/test_preprocess.py`` compares the two on every format).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resized_pixels(image: Image.Image, size: int) -> np.ndarray:
    """``[size, size, 3]`` uint8: ``image`` (RGB) squash-resized as scoring resizes it."""
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def normalised(pixels: np.ndarray, mean, std) -> np.ndarray:
    """``[..., 3, S, S]`` float32 network input of ``[..., S, S, 3]`` uint8 pixels."""
    x = pixels.astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def net_input(image: Image.Image, size: int, mean, std) -> np.ndarray:
    """``[3, size, size]`` float32: ``image`` (RGB) resized and normalised."""
    return normalised(resized_pixels(image, size), mean, std)
