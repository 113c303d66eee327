"""Finding images (memocli.scan) and reading their metadata (memocli.exif)."""

import os

import pytest
from conftest import invoke, write_photo
from PIL import Image

from memocli.exif import camera_name, parse_exif_date, read_image_meta
from memocli.scan import scan


def rel(result, root):
    return [os.path.relpath(f.path, root) for f in result.files]


def test_finds_image_extensions_recursively_in_any_case(tmp_path):
    for name in ["a.jpg", "b.JPEG", "sub/c.png", "sub/deeper/d.WebP", "e.tif", "f.TIFF",
                 "g.bmp", "h.gif"]:
        write_photo(tmp_path / name, format="PNG")
    (tmp_path / "notes.txt").write_text("not a photo")
    result = scan([tmp_path])
    assert rel(result, tmp_path) == ["a.jpg", "b.JPEG", "e.tif", "f.TIFF", "g.bmp", "h.gif",
                                     "sub/c.png", "sub/deeper/d.WebP"]
    assert result.problems == []
    first = result.files[0]
    assert first.abspath == os.path.abspath(tmp_path / "a.jpg")
    assert first.size == (tmp_path / "a.jpg").stat().st_size
    assert first.mtime_ns == (tmp_path / "a.jpg").stat().st_mtime_ns


def test_hidden_folders_and_files_are_skipped_unless_asked(tmp_path):
    write_photo(tmp_path / "seen.jpg")
    write_photo(tmp_path / ".thumbnails" / "t.jpg")
    write_photo(tmp_path / ".seen.jpg")
    assert rel(scan([tmp_path]), tmp_path) == ["seen.jpg"]
    assert rel(scan([tmp_path], include_hidden=True), tmp_path) == [
        ".seen.jpg", ".thumbnails/t.jpg", "seen.jpg"]


def test_named_files_are_taken_whatever_their_name(tmp_path):
    odd = write_photo(tmp_path / ".hidden" / "photo.data", format="JPEG")
    result = scan([odd, tmp_path / ".hidden"])
    assert [f.path for f in result.files] == [str(odd)]  # listed once


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_a_named_pipe_under_a_photos_name_is_counted_not_opened(tmp_path, tiny_checkpoint):
    write_photo(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it to read would wait for a writer forever
    result = scan([tmp_path])
    assert rel(result, tmp_path) == ["a.jpg"] and result.problems == []
    assert result.passed_over["special file"] == 1
    run = invoke(["score", str(tmp_path), "-w", str(tiny_checkpoint), "--no-cache"])
    assert run.exit_code == 0
    assert "not photos:" in run.stderr and "1 special file" in run.stderr


def test_symlink_loops_end_and_linked_files_are_listed_once(tmp_path):
    lib = tmp_path / "lib"
    write_photo(lib / "a.jpg")
    write_photo(lib / "sub" / "b.jpg")
    (lib / "sub" / "loop").symlink_to(lib, target_is_directory=True)  # lib/sub/loop -> lib
    (lib / "alias.jpg").symlink_to(lib / "a.jpg")
    (lib / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    result = scan([lib])
    assert sorted(os.path.basename(f.path) for f in result.files) == ["a.jpg", "b.jpg"]
    assert result.problems == [(str(lib / "dangling.jpg"), "broken symbolic link")]


def test_relative_inputs_give_relative_paths(tmp_path, monkeypatch):
    write_photo(tmp_path / "p" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    assert [f.path for f in scan(["p/"]).files] == ["p/a.jpg"]
    monkeypatch.chdir(tmp_path / "p")
    found = scan(["."]).files
    assert [f.path for f in found] == ["a.jpg"]
    assert found[0].abspath == str(tmp_path / "p" / "a.jpg")


def test_exif_dates_and_camera_names():
    assert parse_exif_date("2019:07:14 18:03:22") == "2019-07-14T18:03:22"
    assert parse_exif_date("2019-07-14 18:03:22") == "2019-07-14T18:03:22"
    assert parse_exif_date("0000:00:00 00:00:00") is None
    assert parse_exif_date("    ") is None
    assert camera_name("Canon", "Canon EOS 5D") == "Canon EOS 5D"
    assert camera_name("SONY", "ILCE-7M3") == "SONY ILCE-7M3"
    assert camera_name(None, None) is None


def exif_photo(path, orientation=1, size=(60, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, (90, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "FUJIFILM"
    exif[0x0110] = "X-T4"
    exif[0x0112] = orientation
    exif[0x0132] = "2020:01:01 00:00:00"
    exif.get_ifd(0x8769)[0x9003] = "2021:06:05 04:03:02"  # DateTimeOriginal wins
    img.save(path, exif=exif)
    return path


def test_image_meta_reads_exif_and_upright_size(tmp_path):
    meta = read_image_meta(exif_photo(tmp_path / "rot.jpg", orientation=6))
    assert (meta.width, meta.height) == (40, 60)  # rotated 90 degrees: upright is portrait
    assert meta.taken_at == "2021-06-05T04:03:02"
    assert meta.camera == "FUJIFILM X-T4"
    plain = read_image_meta(write_photo(tmp_path / "p.png", size=(30, 20)))
    assert (plain.width, plain.height, plain.taken_at, plain.camera) == (30, 20, None, None)


def test_image_meta_of_garbage_is_empty_not_an_error(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe1 not really")
    meta = read_image_meta(junk)
    assert (meta.width, meta.height, meta.taken_at, meta.camera) == (None, None, None, None)
