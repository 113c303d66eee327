"""Images of more than 8 bits a channel are decoded by their real range: a 32-bit float
TIFF is not black, a 32-bit integer TIFF is not clipped, 16-bit images are as before.
Fixtures are written with tifffile (the TIFFs) and Pillow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke
from PIL import Image

from memocli.decode import load_image

RAMP = np.linspace(0, 1, 64 * 48).reshape(48, 64)  # left-top black to right-bottom white
EIGHT_BIT = np.minimum(RAMP * 256, 255).astype(np.uint8)

SAMPLES = {  # name: the same ramp stored as
    "float32.tif": RAMP.astype(np.float32),
    "uint32.tif": np.round(RAMP * (2**32 - 1)).astype(np.uint32),
    "int32.tif": np.round(RAMP * (2**31 - 1)).astype(np.int32),
    "uint16.tif": np.round(RAMP * 65535).astype(np.uint16),
    "int16.tif": np.round(RAMP * 32767).astype(np.int16),
}


def write_tiff(path: Path, values: np.ndarray) -> Path:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, values, photometric="minisblack")
    return path


@pytest.mark.parametrize("name", SAMPLES)
def test_a_deep_tiff_decodes_as_its_8_bit_ramp(tmp_path, name):
    image = load_image(write_tiff(tmp_path / name, SAMPLES[name]))
    gray = np.asarray(image)[:, :, 0].astype(int)
    assert image.mode == "RGB"
    assert np.abs(gray - EIGHT_BIT).max() <= 1, name


def test_a_float_image_outside_0_1_is_spread_from_its_lowest_to_its_highest_value(tmp_path):
    hdr = (RAMP * 40 - 5).astype(np.float32)  # -5 .. 35 (HDR radiance, a measurement)
    hdr[0, 0] = np.nan
    gray = np.asarray(load_image(write_tiff(tmp_path / "hdr.tif", hdr)))[:, :, 0].astype(int)
    assert gray[0, 0] == 0 and gray[-1, -1] == 255
    assert np.abs(gray[1:, :] - EIGHT_BIT[1:, :]).max() <= 1


def test_a_16_bit_png_is_decoded_as_before(tmp_path):
    """16-bit values v become v // 256, as memo always decoded them (scores unchanged)."""
    values = np.arange(0, 65536, 21, dtype=np.uint16)[: 48 * 64].reshape(48, 64)
    Image.fromarray(values).save(tmp_path / "deep.png")
    gray = np.asarray(load_image(tmp_path / "deep.png"))[:, :, 0]
    assert (gray == values // 256).all()


@pytest.mark.slow
def test_deep_tiffs_score_as_their_8_bit_copy(tmp_path, tiny_checkpoint):
    lib = tmp_path / "lib"
    for name, values in SAMPLES.items():
        write_tiff(lib / name, values)
    Image.fromarray(EIGHT_BIT).save(lib / "eight-bit.png")
    Image.fromarray(np.zeros_like(EIGHT_BIT)).save(lib / "black.png")
    rows = json.loads(invoke(["score", str(lib), "--json", "-w", str(tiny_checkpoint),
                              "--cache", str(tmp_path / "c.db"), "--workers", "0"]).stdout)
    raw = {Path(r["path"]).name: r["raw_score"] for r in rows}
    for name in SAMPLES:
        assert raw[name] == pytest.approx(raw["eight-bit.png"], abs=1e-3), (name, raw)
    assert abs(raw["black.png"] - raw["eight-bit.png"]) > 5e-3, raw  # the check can tell
