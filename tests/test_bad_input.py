"""A corpus of broken and unusual files: each is scored or skipped with one clear line.

The corpus is generated here (nothing binary is committed). Every case says what memo must
do with it; the run goes on past every bad file and ends with exit status 1.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_photo
from PIL import Image

from memocli import score
from memocli.cli import cli


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` (its pixel data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def gradient(size=(64, 48), mode="RGB") -> Image.Image:
    img = Image.linear_gradient("L").resize(size)
    return img.convert(mode) if mode != "L" else img


def build_corpus(lib: Path) -> tuple[set[str], dict[str, str]]:
    """Write the corpus; return (names that must be scored, {name: expected reason})."""
    lib.mkdir(parents=True)
    ok, bad = set(), {}

    (lib / "zero-bytes.jpg").write_bytes(b"")
    bad["zero-bytes.jpg"] = "empty file (0 bytes)"

    whole = write_photo(lib / "whole.jpg", size=(120, 90), quality=90)
    ok.add("whole.jpg")
    (lib / "truncated.jpg").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    bad["truncated.jpg"] = "cannot decode image: "

    (lib / "notes.jpg").write_text("shopping list: eggs, milk\n")
    bad["notes.jpg"] = "not a recognised image format"

    png_declaring(lib / "bomb.png", 30000, 30000)
    bad["bomb.png"] = "refused: image too large to decode safely (over 180 megapixels)"

    # A folder named like a photo is a folder: walked, not decoded.
    write_photo(lib / "album.jpg" / "inside.png")
    ok.add("inside.png")

    ramp16 = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp16).save(lib / "sixteen-bit.png")
    assert Image.open(lib / "sixteen-bit.png").mode.startswith("I")
    ok.add("sixteen-bit.png")

    gradient(mode="CMYK").save(lib / "cmyk.jpg")
    ok.add("cmyk.jpg")
    gradient(mode="L").save(lib / "gray.jpg")
    ok.add("gray.jpg")

    palette = gradient().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(lib / "palette-transparent.png", transparency=0)
    ok.add("palette-transparent.png")

    frames = [Image.new("RGB", (48, 40), c) for c in ((200, 30, 30), (30, 30, 200))]
    frames[0].save(lib / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(lib / "animated.webp", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(lib / "first-frame.png")
    ok |= {"animated.gif", "animated.webp", "first-frame.png"}

    upright = gradient((40, 60))
    upright.save(lib / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; "rotate 90 degrees clockwise to view"
    upright.transpose(Image.Transpose.ROTATE_90).save(lib / "exif-rotated.jpg", quality=95,
                                                      exif=exif)
    ok |= {"upright.jpg", "exif-rotated.jpg"}

    for name in ("café – été 😀.jpg", "two  spaces .jpg", "new\nline.jpg"):
        write_photo(lib / name, color=(90, 160, 40))
        ok.add(name)

    loop = lib / "loop"
    loop.mkdir()
    os.symlink("..", loop / "back-up")  # lib/loop/back-up -> lib: a link loop
    return ok, bad


def run_score(lib: Path, ckpt: Path, db: Path, *extra: str):
    result = CliRunner().invoke(cli, ["score", str(lib), "--json", "-w", str(ckpt),
                                      "--cache", str(db), "--workers", "0", *extra],
                                catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


@pytest.mark.slow
def test_every_corpus_file_is_scored_or_skipped_with_its_reason(tmp_path, tiny_checkpoint):
    lib = tmp_path / "library"
    ok, bad = build_corpus(lib)
    result = run_score(lib, tiny_checkpoint, tmp_path / "c.db")
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert sorted(Path(r["path"]).name for r in rows) == sorted(ok)
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == len(bad), skipped
    for name, reason in bad.items():
        shown = str(lib / name).replace("\n", "\\n")
        assert any(line.startswith(f"skipped {shown}: {reason}") for line in skipped), name
    assert result.stderr.splitlines()[-1] == (
        f"Error: {len(bad)} file(s) skipped (reasons above); the others were scored")

    by = {Path(r["path"]).name: r for r in rows}
    assert by["animated.gif"]["raw_score"] == pytest.approx(by["first-frame.png"]["raw_score"],
                                                            abs=1e-6)
    assert (by["exif-rotated.jpg"]["width"], by["exif-rotated.jpg"]["height"]) == (40, 60)
    assert by["exif-rotated.jpg"]["raw_score"] == pytest.approx(by["upright.jpg"]["raw_score"],
                                                                abs=0.01)


@pytest.mark.slow
def test_a_clean_library_exits_0_and_strict_stops_at_the_first_bad_file(tmp_path,
                                                                         tiny_checkpoint):
    lib = tmp_path / "library"
    write_photo(lib / "a.jpg")
    write_photo(lib / "b.jpg", color=(10, 200, 10))
    assert run_score(lib, tiny_checkpoint, tmp_path / "c.db").exit_code == 0

    (lib / "broken.jpg").write_text("not a photo")
    write_photo(lib / "c.jpg", color=(200, 10, 10))
    result = run_score(lib, tiny_checkpoint, tmp_path / "c.db", "--strict")
    assert result.exit_code == 1
    assert result.stdout == ""  # no ranking from a run that stopped
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {lib / 'broken.jpg'}: not a recognised image format (stopped: --strict)")


def test_file_that_vanishes_between_scan_and_read_is_skipped(tmp_path, tiny_checkpoint,
                                                             monkeypatch):
    lib = tmp_path / "library"
    keep, gone = write_photo(lib / "keep.jpg"), write_photo(lib / "gone.jpg")
    real_scan = score.scan

    def scan_then_delete(*args, **kwargs):
        found = real_scan(*args, **kwargs)
        gone.unlink()
        return found

    monkeypatch.setattr(score, "scan", scan_then_delete)
    result = run_score(lib, tiny_checkpoint, tmp_path / "c.db")
    assert result.exit_code == 1
    assert [Path(r["path"]).name for r in json.loads(result.stdout)] == [keep.name]
    assert f"skipped {gone}: file vanished before it could be read" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission_is_skipped(tmp_path, tiny_checkpoint):
    lib = tmp_path / "library"
    write_photo(lib / "ok.jpg")
    private = write_photo(lib / "private.jpg")
    private.chmod(0)
    result = run_score(lib, tiny_checkpoint, tmp_path / "c.db")
    assert result.exit_code == 1
    assert f"skipped {private}: permission denied" in result.stderr


def test_memo_home_set_to_a_file_says_it_is_a_file(tmp_path, make_photos, tiny_checkpoint,
                                                   monkeypatch):
    home = tmp_path / "memo-home-file"
    home.write_text("not a folder\n")
    monkeypatch.setenv("MEMO_HOME", str(home))
    result = CliRunner().invoke(cli, ["score", str(make_photos(1)[0]), "-w",
                                      str(tiny_checkpoint)])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {home}/memo.db: cannot create the cache: {home} is a "
                             "file, not a folder\n")
    assert home.read_text() == "not a folder\n"


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_weights_that_are_no_file_say_what_they_are(tmp_path, make_photos, kind):
    weights = tmp_path / "model.pt"
    if kind == "fifo":
        os.mkfifo(weights)
    else:
        weights.mkdir()
    said = {"fifo": "a named pipe (FIFO)", "folder": "a folder"}[kind]
    photo = str(make_photos(1)[0])
    for command in (["score", photo, "--no-cache"], ["explain", photo]):
        result = CliRunner().invoke(cli, [*command, "-w", str(weights)])
        assert result.exit_code == 1, result.output
        assert result.stderr == f"Error: {weights}: {said}, not a checkpoint file\n"
