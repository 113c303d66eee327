"""`memo export`: one row per photo with the documented columns, CSV or JSON."""

import csv
import hashlib
import json
from pathlib import Path

import pytest
from conftest import invoke, write_photo
from test_scan import exif_photo

from memocli.output import COLUMNS
from memocli.predictor import Predictor

DOCUMENTED = ["rank", "path", "score", "percentile", "content_hash", "width", "height",
              "date_taken", "camera", "model_id", "raw_score", "burst", "kind", "group"]


def test_csv_has_the_documented_columns_and_one_row_per_image(tmp_path, make_photos,
                                                               tiny_checkpoint):
    photos = make_photos(4)
    exif_photo(photos[0].parent / "nested" / "camera.jpg", orientation=6)
    (photos[0].parent / "notes.txt").write_text("not a photo")
    out = tmp_path / "ranks.csv"
    result = invoke(["export", str(photos[0].parent), str(out), "-w", str(tiny_checkpoint),
                     "--cache", str(tmp_path / "c.db"), "--workers", "0"])
    assert f"wrote 5 row(s) to {out}" in result.stderr
    assert list(COLUMNS) == DOCUMENTED
    docs = (Path(__file__).resolve().parent.parent / "docs" / "scoring.md").read_text()
    assert "| " + " | ".join(DOCUMENTED) + " |" in docs.replace("`", "")
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == DOCUMENTED
        rows = list(reader)
    assert len(rows) == 5
    assert sorted(Path(r["path"]).name for r in rows) == sorted(
        [p.name for p in photos] + ["camera.jpg"])
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    raw = [float(r["raw_score"]) for r in rows]
    assert raw == sorted(raw, reverse=True)
    assert float(rows[0]["percentile"]) == 100.0 and float(rows[-1]["percentile"]) == 0.0
    for r in rows:
        assert r["content_hash"] == hashlib.sha256(Path(r["path"]).read_bytes()).hexdigest()
        assert r["model_id"].startswith("vnet_tiny-")
        assert 0.0 <= float(r["score"]) <= 1.0
    cam = next(r for r in rows if r["path"].endswith("camera.jpg"))
    assert (cam["width"], cam["height"], cam["date_taken"], cam["camera"]) == (
        "40", "60", "2021-06-05T04:03:02", "FUJIFILM X-T4")
    plain = next(r for r in rows if r["path"].endswith(photos[0].name))
    assert (plain["width"], plain["height"], plain["date_taken"], plain["camera"]) == (
        "48", "40", "", "")


@pytest.mark.slow
def test_export_reuses_scores_and_only_scores_what_is_missing(tmp_path, make_photos,
                                                              tiny_checkpoint, monkeypatch):
    photos = make_photos(3)
    db = tmp_path / "c.db"
    scored = json.loads(invoke(["score", str(photos[0].parent), "--json", "-w",
                                str(tiny_checkpoint), "--cache", str(db)]).stdout)
    extra = write_photo(photos[0].parent / "new.png", color=(5, 200, 5))
    seen = []
    real = Predictor.iter_predictions

    def counting(predictor, paths, *args, **kwargs):
        seen.extend(Path(p).name for p in paths)
        yield from real(predictor, paths, *args, **kwargs)

    monkeypatch.setattr(Predictor, "iter_predictions", counting)
    out = tmp_path / "ranks.json"  # the extension picks JSON
    invoke(["export", str(photos[0].parent), str(out), "-w", str(tiny_checkpoint),
            "--cache", str(db), "-s"])
    assert seen == [extra.name]
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and list(rows[0]) == DOCUMENTED
    before = {r["path"]: r["raw_score"] for r in scored}
    assert {r["path"]: r["raw_score"] for r in rows if r["path"] in before} == before


@pytest.mark.slow
def test_export_to_stdout_and_format_flag(tmp_path, make_photos, tiny_checkpoint):
    photos = make_photos(2)
    more = write_photo(tmp_path / "more" / "m.jpg")
    result = invoke(["export", str(photos[0].parent), str(more.parent), "-", "--format",
                     "json", "-w", str(tiny_checkpoint), "--no-cache", "-s"])
    rows = json.loads(result.stdout)
    assert len(rows) == 3
    out = tmp_path / "ranks.txt"
    invoke(["export", str(photos[0].parent), str(out), "--format", "csv", "-w",
            str(tiny_checkpoint), "--no-cache", "-s"])
    assert out.read_text().splitlines()[0] == ",".join(DOCUMENTED)


def test_export_skips_bad_files_with_exit_1_and_still_writes(tmp_path, make_photos,
                                                             tiny_checkpoint):
    photos = make_photos(2)
    (photos[0].parent / "broken.gif").write_bytes(b"GIF89a garbage")
    out = tmp_path / "ranks.csv"
    result = invoke(["export", str(photos[0].parent), str(out), "-w", str(tiny_checkpoint),
                     "--cache", str(tmp_path / "c.db")], code=1)
    assert len(out.read_text().splitlines()) == 1 + 2
    assert f"skipped {photos[0].parent / 'broken.gif'}: " in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: 1 file(s) skipped")


def test_format_comes_from_the_extension_and_an_unknown_one_is_refused(tmp_path, make_photos,
                                                                       tiny_checkpoint):
    photos = make_photos(3)
    common = ["-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db"), "-s"]
    invoke(["export", str(photos[0].parent), str(tmp_path / "r.JSONL"), *common])
    lines = (tmp_path / "r.JSONL").read_text().splitlines()
    assert [json.loads(line)["rank"] for line in lines] == [1, 2, 3]
    invoke(["export", str(photos[0].parent), str(tmp_path / "r.json"), *common])
    assert json.loads((tmp_path / "r.json").read_text()) == [json.loads(x) for x in lines]
    result = invoke(["export", str(photos[0].parent), str(tmp_path / "r.xlsx"), *common],
                    code=2)
    assert "r.xlsx's extension: use .csv, .json or .jsonl, or pass --format" in result.stderr
    assert not (tmp_path / "r.xlsx").exists()


def test_a_forgotten_out_is_named(make_photos):
    photos = make_photos(1)
    result = invoke(["export", str(photos[0].parent)], code=2)
    assert "Missing argument 'OUT'" in result.stderr
