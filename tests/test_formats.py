"""iPhone and camera formats: HEIC/HEIF and RAW decode upright with their EXIF; RAW+JPEG
pairs rank once; videos, sidecars, system files and memo's own outputs are passed over."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_photo

from memocli.cli import cli
from memocli.decode import load_image
from memocli.exif import read_image_meta
from memocli.scan import scan

pytest.importorskip("pillow_heif", reason="pillow-heif (a memo dependency) is not installed")
pytest.importorskip("tifffile", reason="tifffile (memo[test]) writes the test DNGs")
rawpy = pytest.importorskip("rawpy", reason="rawpy (a memo dependency) is not installed")

from photo_formats import RED, write_dng, write_heic


def test_heic_decodes_upright_with_its_exif(tmp_path):
    heic = write_heic(tmp_path / "IMG_0001.HEIC", size=(64, 48), orientation=6)
    image = load_image(heic)
    assert image.size == (48, 64)  # turned right: the dark edge is now at the top
    pixels = np.asarray(image)
    assert pixels[:8].mean() < 30 and pixels[-8:].mean() > 60
    meta = read_image_meta(heic)
    assert (meta.width, meta.height) == (48, 64)
    assert meta.taken_at == "2024-05-06T07:08:09"
    assert meta.camera == "Apple iPhone 15"


@pytest.mark.parametrize("preview", ["jpeg", "bitmap"])
def test_raw_uses_the_embedded_preview_turned_upright(tmp_path, preview):
    dng = write_dng(tmp_path / f"IMG_{preview}.dng", preview=preview)
    with rawpy.imread(str(dng)) as raw:
        assert raw.extract_thumb().format.name == preview.upper()
    image = load_image(dng)
    assert image.size == (24, 32)  # the 32x24 preview, turned right
    assert np.abs(np.asarray(image, np.float32) - RED).max() < 12
    if preview == "jpeg":  # decoded at a reduced size, as JPEG photos are
        assert load_image(dng, min_side=8).size == (12, 16)
    meta = read_image_meta(dng)
    assert (meta.width, meta.height) == (48, 64)  # the full sensor image, upright
    assert meta.camera == "Canon EOS R5" and meta.taken_at == "2023-01-02T03:04:05"


def test_raw_without_a_preview_is_developed_at_half_size(tmp_path):
    dng = write_dng(tmp_path / "IMG_2.DNG", preview=None)
    with rawpy.imread(str(dng)) as raw, pytest.raises(rawpy.LibRawNoThumbnailError):
        raw.extract_thumb()
    image = load_image(dng)
    assert image.size == (24, 32) and image.mode == "RGB"  # half of 64x48, turned right
    column_means = np.asarray(image, np.float32).mean(axis=(1, 2))
    assert column_means[-1] > column_means[0]  # the ramp now runs top to bottom


def test_raw_and_jpeg_of_one_shot_rank_once_as_the_jpeg(tmp_path):
    write_photo(tmp_path / "IMG_1.JPG")
    write_dng(tmp_path / "IMG_1.CR2", preview="bitmap")  # a RAW's extension, any maker
    write_dng(tmp_path / "IMG_2.dng", preview="bitmap")
    write_dng(tmp_path / "sub" / "IMG_1.dng", preview="bitmap")  # another folder: not a twin
    result = scan([tmp_path])
    assert [f.relpath for f in result.files] == ["IMG_1.JPG", "IMG_2.dng", "sub/IMG_1.dng"]
    assert result.passed_over == {"raw twin": 1}


def test_not_photos_are_passed_over_and_counted(tmp_path):
    write_photo(tmp_path / "a.jpg")
    write_photo(tmp_path / "a.memo.jpg")  # memo explain's overlay
    write_photo(tmp_path / "maps" / "a.memo.png", format="PNG")  # --heatmap-only
    for name in ("IMG_1.MOV", "clip.mp4", "a.jpg.xmp", "IMG_1.AAE", "Thumbs.db", "notes.txt",
                 ".DS_Store", "._a.jpg"):
        (tmp_path / name).write_bytes(b"not a photo")
    result = scan([tmp_path])
    assert [f.relpath for f in result.files] == ["a.jpg"]
    assert result.problems == []
    assert result.passed_over == {"memo output": 2, "video": 2, "sidecar": 2,
                                  "system file": 3, "other file": 1}
    assert [f.relpath for f in scan([tmp_path], include_hidden=True).files] == ["a.jpg"]


def test_a_mixed_folder_scores_every_photo_once(tmp_path, tiny_checkpoint):
    write_photo(tmp_path / "lib" / "beach.jpg", size=(96, 64))
    write_heic(tmp_path / "lib" / "IMG_0001.HEIC", orientation=6)
    write_dng(tmp_path / "lib" / "DSC_0002.dng", preview="jpeg")
    write_dng(tmp_path / "lib" / "IMG_0003.dng", preview=None)
    write_photo(tmp_path / "lib" / "IMG_0003.jpg")
    shutil.copy(tmp_path / "lib" / "beach.jpg", tmp_path / "lib" / "beach.memo.jpg")
    (tmp_path / "lib" / "IMG_0001.MOV").write_bytes(b"\0\0\0\x18ftypqt  ")
    (tmp_path / "lib" / "IMG_0001.AAE").write_text("<plist/>")
    (tmp_path / "lib" / "bad.nef").write_bytes(b"not a raw file at all")
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "lib"), "--json", "-w",
                                      str(tiny_checkpoint), "--no-cache", "--workers", "0"])
    assert result.exit_code == 1, result.output
    rows = {r["path"].rsplit("/", 1)[1]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == ["DSC_0002.dng", "IMG_0001.HEIC", "IMG_0003.jpg", "beach.jpg"]
    assert rows["IMG_0001.HEIC"]["camera"] == "Apple iPhone 15"
    assert (rows["IMG_0001.HEIC"]["width"], rows["IMG_0001.HEIC"]["height"]) == (48, 64)
    assert rows["DSC_0002.dng"]["date_taken"] == "2023-01-02T03:04:05"
    assert "bad.nef: cannot decode image: not a camera RAW file libraw can read " \
        "(Input/output error)\n" in result.stderr  # libraw's reason as text, not b'...'
    assert ("4 photo(s): 0 from the cache, 4 scored now" in result.stderr
            and "; 1 RAW file ranked as its JPEG; not photos: 1 memo output, 1 sidecar, "
                "1 video\n" in result.stderr)
