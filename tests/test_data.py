import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import write_photo
from PIL import Image

from memocli.data import DatasetError, load_split
from memocli.decode import is_reduced, load_image
from memocli.errors import MemoError
from memocli.formats import open_image


def lamem(tmp_path: Path, lines: list[str], split="train_1", images=("a.jpg", "b.jpg")) -> Path:
    root = tmp_path / "ds"
    for name in images:
        write_photo(root / "images" / name)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_lamem_split_is_parsed(tmp_path):
    root = lamem(tmp_path, ["a.jpg 0.5", "", "b.jpg 0.75"])
    items = load_split(root, "train_1")
    assert [(i.path.name, i.score) for i in items] == [("a.jpg", 0.5), ("b.jpg", 0.75)]


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    root = lamem(tmp_path, [
        "a.jpg 0.5",
        "b.jpg",                 # 2: malformed
        "b.jpg high",            # 3: not a number
        "../secret.jpg 0.1",     # 4: escapes root
        "/etc/passwd 0.1",       # 5: absolute
        "missing.jpg 0.3",       # 6: missing
        "text.jpg 0.3",          # 7: not an image
        "b.jpg nan",             # 8: not finite
    ])
    (root / "images" / "text.jpg").write_text("hello")
    with pytest.raises(DatasetError) as err:
        load_split(root, "train_1")
    problems = err.value.problems
    joined = "\n".join(problems)
    for line in (2, 3, 4, 5, 6, 7, 8):
        assert f"splits/train_1.txt:{line}:" in joined
    assert "splits/train_1.txt:1:" not in joined
    assert len(problems) == 7
    assert "leaves" in joined and "not a number" in joined and "no such image" in joined


def test_missing_split_file_names_the_available_ones(tmp_path):
    root = lamem(tmp_path, ["a.jpg 0.5"])
    with pytest.raises(MemoError, match="available: train_1"):
        load_split(root, "val_1")


def test_csv_manifest_with_splits(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_photo(tmp_path / "imgs" / name)
    manifest = tmp_path / "data.csv"
    manifest.write_text("path,score,split\nimgs/a.jpg,0.1,train\nimgs/b.jpg,0.2,val\n"
                        "imgs/c.jpg,0.3,train\n")
    assert [i.path.name for i in load_split(manifest, "train_1")] == ["a.jpg", "c.jpg"]
    assert [i.score for i in load_split(manifest, "val")] == [0.2]
    assert len(load_split(manifest, None)) == 3


def test_csv_manifest_errors(tmp_path):
    write_photo(tmp_path / "a.jpg")
    manifest = tmp_path / "data.csv"
    manifest.write_text("path,score\na.jpg,x\n../a.jpg,0.1\n")
    with pytest.raises(DatasetError) as err:
        load_split(manifest, None)
    assert err.value.problems[0].startswith("data.csv:2:")
    assert err.value.problems[1].startswith("data.csv:3:")
    manifest.write_text("file,value\n")
    with pytest.raises(MemoError, match="'path' and 'score'"):
        load_split(manifest, None)


def test_load_image_applies_exif_orientation(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_load_image_flattens_transparency_and_grayscale(tmp_path):
    from PIL import Image

    rgba = tmp_path / "t.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(rgba)
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    gray = tmp_path / "g.png"
    Image.new("L", (8, 8), 100).save(gray)
    assert load_image(gray).getpixel((0, 0)) == (100, 100, 100)


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    path = write_photo(tmp_path / "big.jpg", size=(2000, 1500))
    small = load_image(path, min_side=224)
    assert min(small.size) >= 224 and small.size[0] < 2000 and is_reduced(small)
    full = load_image(path)
    assert full.size == (2000, 1500) and not is_reduced(full)
    assert not is_reduced(load_image(write_photo(tmp_path / "small.jpg"), min_side=224))


def test_importing_and_decoding_change_no_process_setting(tmp_path):
    """``import memocli`` as a library leaves Pillow's limit and the warning filters alone,
    and so does decoding; memo's own limit applies where memo opens images."""
    photo = write_photo(tmp_path / "a.jpg")
    code = (
        "import warnings\nimport numpy\nfrom PIL import Image\n"  # numpy sets its own filters
        "before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))\n"
        "import memocli, memocli.cli, memocli.decode, memocli.exif, memocli.score\n"
        f"memocli.decode.load_image({str(photo)!r}, 32)\n"
        f"memocli.exif.read_image_meta({str(photo)!r})\n"
        "print(before == (Image.MAX_IMAGE_PIXELS, list(warnings.filters)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "True", result.stderr


def test_memo_limit_without_pillow_warnings(tmp_path):
    from test_bad_input import png_declaring

    big = png_declaring(tmp_path / "big.png", 10_000, 10_000)  # 100 MP: Pillow would warn
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any DecompressionBombWarning fails the test
        open_image(big).close()
    with pytest.raises(Image.DecompressionBombError):
        open_image(png_declaring(tmp_path / "huge.png", 15_000, 12_001))  # just over 180 MP
    assert Image.MAX_IMAGE_PIXELS == pillow_limit


def test_reframe_crops_a_little_at_a_random_place_and_repeats_under_a_seed():
    import numpy as np
    import torch

    from memocli.data import Reframe

    # red = x // 2, green = y // 2: a crop's first pixel tells where it starts
    xs, ys = np.meshgrid(np.arange(400) // 2, np.arange(300) // 2)
    image = Image.fromarray(np.dstack([xs, ys, xs * 0]).astype(np.uint8))

    def boxes():
        torch.manual_seed(0)
        out = []
        for _ in range(200):
            crop = Reframe(0.05)(image)
            out.append((*crop.getpixel((0, 0))[:2], crop.width, crop.height))
        return out

    drawn = boxes()
    for left, top, width, height in drawn:
        assert 380 <= width <= 400 and 285 <= height <= 300
        assert left * 2 + width <= 401 and top * 2 + height <= 301
    assert len({(w, h) for _, _, w, h in drawn}) > 50  # width and height drawn independently
    assert len({(x, y) for x, y, _, _ in drawn}) > 20  # at a random place
    assert boxes() == drawn


def test_nudged_views_are_one_reframe_and_the_same_frame_moved_a_few_pixels_mirrored_alike():
    import numpy as np
    import torch

    from memocli.data import NudgedViews
    from memocli.registry import get_config

    cfg = get_config("vnet_tiny")
    views = NudgedViews(cfg)
    image = Image.new("RGB", (400, 300))
    torch.manual_seed(0)
    moves = []
    for _ in range(300):
        box = views.reframe.box(image)
        nudged = views.nudged(image, box)
        assert 0 <= nudged[0] < nudged[2] <= 400 and 0 <= nudged[1] < nudged[3] <= 300
        moves.append([n - b for n, b in zip(nudged, box)])
    moves = np.array(moves)
    assert np.abs(moves[:, [0, 2]]).max() == 6 and np.abs(moves[:, [1, 3]]).max() <= 5  # 1.5%
    assert (moves == 0).all(axis=1).mean() < 0.05  # nearly always moved
    assert len({tuple(m) for m in moves}) > 100  # each edge on its own

    # left half dark, right half light: a mirrored pair is mirrored together
    halves = np.zeros((300, 400, 3), np.uint8)
    halves[:, 200:] = 255
    pair_sides = []
    for _ in range(40):
        pair = views(Image.fromarray(halves))
        assert pair.shape == (2, 3, cfg.input_size, cfg.input_size)
        left_darker = pair[:, 0, :, :10].mean(dim=(1, 2)) < pair[:, 0, :, -10:].mean(dim=(1, 2))
        assert left_darker[0] == left_darker[1]
        pair_sides.append(bool(left_darker[0]))
    assert 5 < sum(pair_sides) < 35  # and mirrored half the time
