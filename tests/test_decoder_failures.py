"""Whatever a decoder raises on a hostile file (pillow-heif's and Pillow's AVIF plugin's
RuntimeError, an EOFError, ...) skips that file with one line; the run goes on and saves
the other scores. Fixtures are generated (tests/photo_formats.py)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import write_photo
from photo_formats import write_avif_without_its_image, write_heic_declaring_1x1

from memocli.cli import cli
from memocli.decode import describe_decode_error, load_image, try_decode


def test_the_decoders_raise_runtime_error_on_these_fixtures(tmp_path):
    """What makes the fixtures hostile: errors outside OSError/ValueError."""
    for path in (write_heic_declaring_1x1(tmp_path / "bad.heic"),
                 write_avif_without_its_image(tmp_path / "avif.jpg")):
        with pytest.raises(RuntimeError):
            load_image(path)


def test_try_decode_turns_any_decoder_error_into_the_files_reason(tmp_path):
    bad = write_avif_without_its_image(tmp_path / "avif.jpg")
    image, reason = try_decode(lambda: load_image(bad), bad)
    assert image is None
    assert reason == "cannot decode image: Failed to decode image: Missing or empty image item"
    assert describe_decode_error(EOFError()) == "cannot decode image: EOFError"
    good = write_photo(tmp_path / "good.jpg")
    image, reason = try_decode(lambda: load_image(good), good)
    assert reason is None and image.size == (48, 40)


@pytest.mark.parametrize("workers", ["0", "1"])  # decoded in this process, or in a worker
def test_a_heic_or_avif_that_breaks_its_decoder_is_skipped_and_the_rest_scored(
        tmp_path, tiny_checkpoint, workers):
    lib = tmp_path / "library"
    write_photo(lib / "a.jpg")
    write_photo(lib / "b.png", color=(10, 200, 10))
    heic = write_heic_declaring_1x1(lib / "bad.heic")
    avif = write_avif_without_its_image(lib / "avif-named.jpg")
    db = tmp_path / "c.db"
    result = CliRunner().invoke(cli, ["score", str(lib), "--json", "-w", str(tiny_checkpoint),
                                      "--cache", str(db), "--workers", workers],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert sorted(r["path"].rsplit("/", 1)[1] for r in json.loads(result.stdout)) == [
        "a.jpg", "b.png"]
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2, skipped
    assert f"skipped {avif}: cannot decode image: Failed to decode image: Missing or empty " \
           "image item" in skipped
    assert any(line.startswith(f"skipped {heic}: cannot decode image: Memory allocation "
                               "error: Security limit exceeded") for line in skipped), skipped
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from scores").fetchone()[0] == 2
