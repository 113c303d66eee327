"""Which file a score belongs to: a file replaced between its hashing and its decoding gets
no score under the old content's hash (it is scored on the next run), and --rehash hashes
every file again for edits that keep size and modification time (exiftool -P)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import invoke, write_photo
from PIL import Image

from memocli.files import hash_file
from memocli.scan import CHANGED
from memocli.score import ModelSource


def scores_by_hash(db: Path) -> dict[str, float]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT content_hash, score FROM scores"))


def raw_scores(result) -> dict[str, float]:
    return {Path(r["path"]).name: r["raw_score"] for r in json.loads(result.stdout)}


def test_a_file_replaced_between_hashing_and_decoding_is_not_scored_under_the_old_hash(
        tmp_path, tiny_checkpoint, monkeypatch):
    lib = tmp_path / "lib"
    photo = write_photo(lib / "a.jpg", color=(30, 30, 30))
    write_photo(lib / "keep.jpg", color=(90, 160, 40))
    replacement = write_photo(tmp_path / "b.jpg", color=(230, 230, 230), size=(64, 48))
    old_hash = hash_file(photo)
    real_load = ModelSource.load

    def load_then_replace(self):  # the model is loaded after hashing, before decoding
        predictor = real_load(self)
        if replacement.exists():
            os.replace(replacement, photo)  # as a sync tool or an editor saves a file
        return predictor

    monkeypatch.setattr(ModelSource, "load", load_then_replace)
    db = tmp_path / "c.db"
    opts = ["--json", "-w", str(tiny_checkpoint), "--cache", str(db), "--workers", "0"]
    result = invoke(["score", str(lib), *opts], code=1)
    assert f"skipped {photo}: {CHANGED}" in result.stderr
    assert list(raw_scores(result)) == ["keep.jpg"]
    assert old_hash not in scores_by_hash(db)  # content A never got B's score

    again = raw_scores(invoke(["score", str(lib), *opts]))  # B is scored, under B's hash
    assert scores_by_hash(db)[hash_file(photo)] == pytest.approx(again["a.jpg"], abs=1e-6)
    assert old_hash not in scores_by_hash(db)


def test_rehash_sees_an_edit_that_kept_size_and_modification_time(tmp_path, tiny_checkpoint):
    lib = tmp_path / "lib"
    upright = Image.Exif()
    upright[0x0112] = 1
    photo = write_photo(lib / "a.jpg", color=(30, 30, 30), size=(64, 40),
                        exif=upright.tobytes())
    db = tmp_path / "c.db"
    opts = ["--json", "-w", str(tiny_checkpoint), "--cache", str(db), "--workers", "0"]
    before = raw_scores(invoke(["score", str(lib), *opts]))["a.jpg"]

    stat = photo.stat()
    subprocess.run(["exiftool", "-q", "-P", "-overwrite_original", "-n", "-Orientation=6",
                    str(photo)], check=True)  # turned, in place: same size, time kept
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # to the nanosecond
    assert (photo.stat().st_size, photo.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    trusted = invoke(["score", str(lib), *opts])
    assert raw_scores(trusted)["a.jpg"] == before  # the stat index vouches for the old file
    assert "1 from the cache, 0 scored now" in trusted.stderr
    rehashed = invoke(["score", str(lib), "--rehash", *opts])
    assert "0 from the cache, 1 scored now" in rehashed.stderr
    row = json.loads(rehashed.stdout)[0]
    assert (row["width"], row["height"]) == (40, 64)  # upright now
    assert row["raw_score"] != before
    assert json.loads(invoke(["score", str(lib), *opts]).stdout) == [row]  # remembered
