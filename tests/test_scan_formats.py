"""A folder scan takes every format memo decodes when named: its list of extensions comes
from the decoders (Pillow's plugins, pillow-heif, libraw's RAW types), so a format the
decoders know is never left out of a scan. Fixtures are written by the decoders' own
libraries (Pillow, pillow-heif, tifffile)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import invoke
from photo_formats import write_dng
from PIL import Image

from memocli.formats import NOT_PHOTO_FORMATS, RAW_EXTENSIONS, photo_extensions
from memocli.scan import scan

#: The extensions a scan used to leave out although memo decoded such files (issue 22).
ONCE_LEFT_OUT = {".avif", ".jp2", ".jfif", ".jpe", ".apng", ".pef", ".srw", ".nrw", ".crw",
                 ".rwl", ".sr2", ".3fr", ".iiq", ".x3f", ".mrw", ".kdc", ".erf", ".raw"}


def savable_extensions() -> dict[str, str]:
    """``{extension: format}`` for every extension Pillow (with pillow-heif) registers
    whose format it can also write: files these tests can make."""
    photo_extensions()  # registers pillow-heif's formats
    return {ext: fmt for ext, fmt in Image.registered_extensions().items()
            if fmt in Image.SAVE}


def write_in_format(path: Path, fmt: str) -> None:
    image = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    if fmt in ("XBM", "MSP"):
        image = image.convert("1")
    if fmt in ("BLP", "ICNS", "ICO", "DDS"):
        image = image.convert("RGBA")
    image.save(path, format=fmt)


def test_the_formats_scans_left_out_are_scanned():
    assert ONCE_LEFT_OUT <= photo_extensions()
    assert RAW_EXTENSIONS <= photo_extensions()
    assert {".heic", ".heif", ".jpg", ".png", ".tif", ".webp"} <= photo_extensions()


@pytest.mark.slow
def test_every_format_the_decoders_read_and_write_is_scanned_and_scored(tmp_path,
                                                                       tiny_checkpoint):
    """One real file per extension: all those a scan takes are scored; the others are
    formats memo names as not photos, or formats Pillow can write but not read (PDF)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    written = {}
    for ext, fmt in savable_extensions().items():
        path = lib / f"picture-{ext[1:]}{ext}"
        try:
            write_in_format(path, fmt)
        except (OSError, ValueError, KeyError) as e:  # a writer that needs an outside tool
            print(f"cannot write {fmt} here: {e}")
            path.unlink(missing_ok=True)
            continue
        written[path.name] = fmt
    raw = write_dng(tmp_path / "sensor.dng", preview="jpeg")
    for ext in RAW_EXTENSIONS:
        shutil.copy(raw, lib / f"raw-{ext[1:]}{ext}")  # libraw knows the file by its bytes
        written[f"raw-{ext[1:]}{ext}"] = "RAW"
    assert ONCE_LEFT_OUT - RAW_EXTENSIONS <= {Path(n).suffix for n in written}

    found = {Path(f.path).name for f in scan([lib]).files}
    expected = {name for name, fmt in written.items()
                if fmt not in NOT_PHOTO_FORMATS and Path(name).suffix in photo_extensions()}
    assert found == expected
    not_scanned = {written[name] for name in set(written) - found}
    assert not_scanned <= NOT_PHOTO_FORMATS | {"PDF", "PALM"}  # PDF, PALM: written only

    result = invoke(["score", str(lib), "--json", "-w", str(tiny_checkpoint), "--cache",
                     str(tmp_path / "c.db"), "--workers", "0"])
    assert {Path(r["path"]).name for r in json.loads(result.stdout)} == found
