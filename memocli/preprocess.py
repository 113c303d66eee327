"""The network input of a decoded photo, with PIL and numpy only (torch-free).

Pixel for pixel what :func:`memocli.data.eval_transform` (torchvision's ``Resize``,
``ToTensor``, ``Normalize``) gives: a bilinear, antialiased squash-resize by PIL (what
torchvision itself calls for a PIL image), then ``/ 255`` and ``(x - mean) / std`` in
float32, in that order (``tests/test_preprocess.py`` compares the two on every format).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def net_input(image: Image.Image, size: int, mean, std) -> np.ndarray:
    """``[3, size, size]`` float32: ``image`` (RGB) resized and normalised."""
    resized = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.uint8).astype(np.float32) / np.float32(255)
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))
