"""Pictures that are not photos: icons, blank images, screenshots and drawings are told
apart from photos and kept out of the ranking unless --include-all."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from memocli.exif import read_image_meta
from memocli.kinds import BLANK, DRAWING, ICON, PHOTO, SCREENSHOT, kind_of, pixel_stats


@pytest.fixture(autouse=True)
def rank_photos_only(monkeypatch):
    monkeypatch.delenv("MEMO_INCLUDE_ALL", raising=False)


def textured(path, size=(480, 360), seed=0, **save):
    """A photo-like picture: smooth light and shade with grain, as a camera gives."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(x / (17 + seed)) * np.cos(y / 23) + 30 * np.sin((x + y) / 41)
    rgb = np.stack([base, base * 0.8 + 20, base * 0.6 + 40], axis=2)
    rgb += rng.normal(0, 9, rgb.shape)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, **save)
    return path


def favicon(path):
    img = Image.new("RGB", (16, 16), (220, 20, 20))
    img.save(path)
    return path


def blank_screenshot(path):
    img = Image.new("RGB", (1170, 2532), (255, 255, 255))
    ImageDraw.Draw(img).text((40, 60), "Settings", fill=(0, 0, 0))
    img.save(path)
    return path


def settings_screenshot(path):
    img = Image.new("RGB", (1170, 2532), (242, 242, 247))
    d = ImageDraw.Draw(img)
    for row in range(12):
        y = 200 + row * 150
        d.rounded_rectangle([40, y, 120, y + 80], radius=16, fill=(52, 120, 246))
        d.rectangle([160, y + 20, 700, y + 60], fill=(30, 30, 30))
        d.line([(40, y + 120), (1130, y + 120)], fill=(210, 210, 210), width=2)
    img.save(path)
    return path


def clip_art(path):
    """A strawberry: flat red body, green leaves, yellow seeds, black outline, on white."""
    img = Image.new("RGB", (600, 700), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.polygon([(100, 200), (500, 200), (300, 650)], fill=(220, 30, 40), outline=(0, 0, 0))
    d.ellipse([100, 120, 500, 330], fill=(220, 30, 40), outline=(0, 0, 0), width=4)
    d.polygon([(200, 130), (300, 40), (400, 130)], fill=(40, 160, 50), outline=(0, 0, 0))
    for i in range(30):
        x, y = 170 + (i * 53) % 260, 220 + (i * 37) % 300
        d.ellipse([x, y, x + 10, y + 14], fill=(250, 220, 60))
    img.save(path, quality=92)
    return path


def document(path):
    img = Image.new("RGB", (1240, 1754), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for line in range(60):
        d.text((120, 120 + line * 25), "Lorem ipsum dolor sit amet, invoice total 42.00 "
               * 2, fill=(0, 0, 0))
    img.save(path)
    return path


@pytest.mark.parametrize(("make", "kind"), [
    (favicon, ICON), (blank_screenshot, SCREENSHOT), (settings_screenshot, SCREENSHOT),
    (clip_art, DRAWING), (document, DRAWING)])
def test_each_kind_of_non_photo_is_told_from_photos(tmp_path, make, kind):
    suffix = ".jpg" if make is clip_art else ".png"
    assert read_image_meta(make(tmp_path / f"x{suffix}")).kind == kind


def test_a_blank_picture_and_a_photo(tmp_path):
    white = tmp_path / "white.jpg"
    Image.new("RGB", (800, 600), (250, 250, 250)).save(white)
    assert read_image_meta(white).kind == BLANK
    assert read_image_meta(textured(tmp_path / "photo.jpg")).kind == PHOTO
    assert read_image_meta(textured(tmp_path / "photo.png", size=(1920, 1080))).kind == PHOTO


def test_a_camera_name_or_a_tiny_size_settles_it_without_pixels():
    assert kind_of(None, 4032, 3024, "Apple iPhone 15") == PHOTO
    assert kind_of(None, 64, 64, "Apple iPhone 15") == ICON
    assert kind_of(None, None, None, None) == PHOTO  # header unreadable: the decoder says


def test_pixel_stats_of_flat_colour_and_of_grain():
    flat = pixel_stats(Image.new("RGB", (300, 200), (10, 200, 30)))
    assert flat["spread"] == 0 and flat["flat"] == 1.0 and flat["palette"] == 1.0
    rng = np.random.default_rng(0)
    grain = pixel_stats(Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)))
    assert grain["flat"] < 0.05 and grain["palette"] < 0.1


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from train_kinds import SHARED, training_fifth  # noqa: E402

SHARED_POOL = SHARED / "pool" / "images"
LOOKS = {"dark": lambda im: ImageEnhance.Brightness(im).enhance(0.15),
         "hazy": lambda im: ImageEnhance.Contrast(im).enhance(0.2),
         "black and white": lambda im: ImageOps.grayscale(im).convert("RGB")}


@pytest.mark.skipif(not SHARED_POOL.is_dir(), reason="needs ../shared/datasets/pool")
@pytest.mark.parametrize("look", LOOKS)
def test_real_photos_stay_photos_when_dark_hazy_or_black_and_white(tmp_path, look):
    """Exported photos carry no camera name, so their pixels decide: a photo's exposure,
    contrast or colour must not make it a drawing (one dark photo in six was one)."""
    photos = [p for p in sorted(SHARED_POOL.glob("*.jpg")) if not training_fifth(p)][:40]
    kinds = {}
    for photo in photos:
        with Image.open(photo) as im:
            LOOKS[look](im.convert("RGB")).save(tmp_path / photo.name, quality=90)
        kinds[photo.name] = read_image_meta(tmp_path / photo.name).kind
    assert [name for name, kind in kinds.items() if kind != PHOTO] == []


def test_texture_statistics_do_not_depend_on_exposure(tmp_path):
    photo = Image.open(textured(tmp_path / "photo.png"))
    dark = pixel_stats(ImageEnhance.Brightness(photo).enhance(0.2))
    bright = pixel_stats(photo)
    assert dark["spread"] < bright["spread"] / 3  # blank images are still told by spread
    for name in ("flat", "smooth", "sharp", "palette"):
        assert dark[name] == pytest.approx(bright[name], abs=0.1), name


def library(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        textured(lib / f"photo_{i}.jpg", seed=i)
    favicon(lib / "favicon.png")
    blank_screenshot(lib / "IMG_0001.PNG")
    clip_art(lib / "strawberry.jpg")
    return lib


def test_non_photos_are_counted_not_ranked_unless_include_all(tmp_path, tiny_checkpoint):
    lib = library(tmp_path)
    args = ["score", str(lib), "-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db"),
            "--json"]
    result = invoke(args)
    rows = json.loads(result.stdout)
    assert sorted(r["path"].rsplit("/", 1)[1] for r in rows) == [
        "photo_0.jpg", "photo_1.jpg", "photo_2.jpg"]
    assert {r["kind"] for r in rows} == {"photo"}
    assert [r["percentile"] for r in rows] == [100.0, 50.0, 0.0]  # among the photos
    assert result.stderr.startswith("3 photo(s) and 3 other picture(s): 0 from the cache, "
                                    "6 scored now")
    assert ("; set aside: 1 drawing or document, 1 icon, 1 screenshot "
            "(--include-all ranks them)") in result.stderr
    every = json.loads(invoke([*args, "--include-all"]).stdout)
    assert {r["path"].rsplit("/", 1)[1]: r["kind"] for r in every} == {
        "photo_0.jpg": "photo", "photo_1.jpg": "photo", "photo_2.jpg": "photo",
        "favicon.png": "icon", "IMG_0001.PNG": "screenshot", "strawberry.jpg": "drawing"}
