"""What the network sees is pinned to ``PREPROCESSING_VERSION`` (memocli/registry.py): a
change to the decode (:func:`memocli.decode.load_image`) or the transform
(:func:`memocli.data.eval_transform`) that moves a pixel without bumping the version fails
here, before it mixes new scores with cached old ones under one model id."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from PIL import Image

from memocli.data import eval_transform
from memocli.decode import load_image
from memocli.registry import DEFAULT_MODEL, PREPROCESSING_VERSION, get_config

#: Per preprocessing version: the SHA-256 of the network input's pixels for the generated
#: photo below, and the size a 4000x3000 JPEG is decoded at (its DCT-scaled draft).
#:
#: How to update: a failure here means the network now sees other pixels. Bump
#: PREPROCESSING_VERSION in memocli/registry.py (cached scores are then recomputed under
#: new model ids, never mixed with old ones), then add an entry for the new version with
#: the values the failure prints, keeping the old entries. The same holds when an upgrade
#: of Pillow or torchvision moves the pixels with no change in memo.
PINNED = {
    2: ("acbb8647de500336991ae1cb43a7a856a8ebd6fb2e29d7f98b7f441156a08a0c", (500, 375)),
}


def photo(path, size=(640, 427)):
    """A fixed photo: gradients and seeded noise, EXIF orientation 6 (rotated 90°), PNG
    (lossless, so its decode is exact everywhere)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(20260101).integers(0, 48, (h, w, 3))
    pixels = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif)
    return path


def network_pixels(x: torch.Tensor, cfg) -> np.ndarray:
    """The network input ``[3, H, W]`` mapped back to 8-bit pixel values: integers, so the
    digest does not depend on the last bit of the float arithmetic."""
    mean = torch.tensor(cfg.mean)[:, None, None]
    std = torch.tensor(cfg.std)[:, None, None]
    return ((x * std + mean) * 255).round().to(torch.int16).numpy()


def test_the_network_input_is_pinned_to_the_preprocessing_version(tmp_path):
    cfg = get_config(DEFAULT_MODEL)
    x = eval_transform(cfg)(load_image(photo(tmp_path / "p.png"), cfg.input_size))
    assert x.shape == (3, cfg.input_size, cfg.input_size)
    pixels = network_pixels(x, cfg)
    assert pixels.min() >= 0 and pixels.max() <= 255  # normalised with cfg's mean and std
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()

    big = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (90, 120, 150)).save(big, quality=90)
    drafted = load_image(big, cfg.input_size).size

    assert PREPROCESSING_VERSION in PINNED, (
        f"no pinned values for PREPROCESSING_VERSION {PREPROCESSING_VERSION}: add "
        f"{PREPROCESSING_VERSION}: ({digest!r}, {drafted}) to PINNED")
    assert (digest, drafted) == PINNED[PREPROCESSING_VERSION], (
        f"the network input changed ({digest!r}, {drafted}) without a new "
        f"PREPROCESSING_VERSION: see PINNED's comment")


def test_the_pin_sees_a_one_level_change(tmp_path):
    """The digest moves when one pixel value moves by one level: the pin is fine enough."""
    cfg = get_config(DEFAULT_MODEL)
    x = eval_transform(cfg)(load_image(photo(tmp_path / "p.png"), cfg.input_size))
    pixels = network_pixels(x, cfg)
    nudged = network_pixels(x + torch.tensor(1 / 255) / torch.tensor(cfg.std)[:, None, None]
                            * (torch.arange(x.numel()).view(x.shape) == 0), cfg)
    assert (nudged != pixels).sum() == 1
    assert hashlib.sha256(nudged.tobytes()).digest() != hashlib.sha256(pixels.tobytes()).digest()
