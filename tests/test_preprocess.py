"""The torch-free network input (memocli.preprocess) is, bit for bit, what the Predictor's
torchvision transform gives, on photos of every format memo decodes."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import torch
from conftest import SHARED_DATASETS
from photo_formats import exif_bytes, write_dng, write_heic
from PIL import Image

from memocli.data import eval_transform
from memocli.decode import load_image
from memocli.preprocess import net_input
from memocli.registry import get_config

LNSIM = SHARED_DATASETS / "lnsim" / "images"


def photo_like(size=(300, 200), seed=0) -> Image.Image:
    """Gradients and seeded noise: every pixel value and edge the resize can meet."""
    rng = numpy.random.default_rng(seed)
    w, h = size
    x, y = numpy.meshgrid(numpy.linspace(0, 255, w), numpy.linspace(0, 255, h))
    rgb = numpy.stack([x, y, (x + y) / 2], axis=2) + rng.normal(0, 25, (h, w, 3))
    return Image.fromarray(numpy.clip(rgb, 0, 255).astype(numpy.uint8))


def write(folder: Path, name: str) -> Path:
    """``folder/name`` written in the format its suffix (and name) says."""
    path = folder / name
    image = photo_like()
    if name == "rotated.jpg":
        image.save(path, quality=90, exif=exif_bytes(orientation=6))
    elif name == "cmyk.jpg":
        image.convert("CMYK").save(path, quality=90)
    elif name == "grey.png":
        image.convert("L").save(path)
    elif name == "alpha.png":
        rgba = image.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(image.size))
        rgba.save(path)
    elif name == "deep.png":
        Image.fromarray((numpy.asarray(image.convert("L"), numpy.uint16) * 257)).save(path)
    elif name == "palette.gif":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    elif name == "photo.heic":
        write_heic(path, image=image, orientation=6)
    elif name == "photo.dng":
        write_dng(path, preview="jpeg", preview_image=image)
    else:
        image.save(path)
    return path


FORMATS = ["photo.jpg", "rotated.jpg", "cmyk.jpg", "photo.png", "grey.png", "alpha.png",
           "deep.png", "palette.gif", "photo.webp", "photo.bmp", "photo.tif", "photo.heic",
           "photo.dng"]


def assert_same_input(path: Path, cfg) -> None:
    image = load_image(path, cfg.input_size)
    expected = eval_transform(cfg)(image).numpy()
    got = net_input(image, cfg.input_size, cfg.mean, cfg.std)
    assert got.dtype == numpy.float32 and got.shape == expected.shape
    numpy.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("arch", ["vnet_r50", "vnet_tiny"])
def test_numpy_input_is_the_torchvision_input(tmp_path, name, arch):
    assert_same_input(write(tmp_path, name), get_config(arch))


@pytest.mark.skipif(not LNSIM.is_dir(), reason="the LNSIM photos are not here")
def test_numpy_input_is_the_torchvision_input_on_real_photos():
    for path in sorted(LNSIM.glob("*.jpg"))[:20]:
        assert_same_input(path, get_config("vnet_r50"))


def test_other_normalisation_is_followed(tmp_path):
    cfg = get_config("vnet_tiny").with_normalisation((0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    assert_same_input(write(tmp_path, "photo.png"), cfg)
    assert not torch.equal(eval_transform(cfg)(photo_like()),
                           eval_transform(get_config("vnet_tiny"))(photo_like()))
