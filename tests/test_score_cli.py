"""`memo score` end to end on generated photos, with the tiny model on the CPU."""

import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import invoke, score_in_a_fresh_process, tiny_checkpoint_at, write_photo

from memocli import checkpoint, score
from memocli.cache import Cache
from memocli.cache import migrations as cache_migrations
from memocli.predictor import Predictor
from memocli.registry import PREPROCESSING_VERSION

REAL_PREDICT = Predictor.iter_predictions


def score_json(photos_dir, ckpt, db, *extra, code=0):
    result = invoke(["score", str(photos_dir), "--json", "-w", str(ckpt), "--cache", str(db),
                     "--workers", "0", *extra], code=code)
    return json.loads(result.stdout), result


@pytest.fixture
def model_calls(monkeypatch):
    """Record the file names every model call is given (and still score them)."""
    calls: list[list[str]] = []

    def counting(predictor, paths, *args, **kwargs):
        calls.append([Path(p).name for p in paths])
        yield from REAL_PREDICT(predictor, paths, *args, **kwargs)

    monkeypatch.setattr(Predictor, "iter_predictions", counting)
    return calls


def forbid_model_and_hashing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model (or hashing) ran on a cached re-scan")

    monkeypatch.setattr(Predictor, "iter_predictions", fail)
    monkeypatch.setattr(checkpoint, "load_checkpoint", fail)
    monkeypatch.setattr(score, "hash_file", fail)


def model_scores(ckpt, paths):
    """What the model says about each file, computed directly (no CLI, no cache)."""
    predictor = Predictor.from_checkpoint(ckpt, "cpu", engine="torch")
    out = {}
    for batch in predictor.iter_predictions(paths, 4, 0):
        out.update({paths[i].name: s for i, s in zip(batch.indices, batch.scores, strict=True)})
    return out


@pytest.mark.slow
def test_ranking_follows_the_model_scores(tmp_path, make_photos, tiny_checkpoint):
    photos = make_photos(7)
    expected = model_scores(tiny_checkpoint, photos)
    assert len(set(expected.values())) == 7  # the test can tell them apart
    rows, _ = score_json(photos[0].parent, tiny_checkpoint, tmp_path / "c.db")
    assert [Path(r["path"]).name for r in rows] == sorted(expected, key=lambda n: -expected[n])
    assert [r["rank"] for r in rows] == list(range(1, 8))
    for r in rows:
        assert r["raw_score"] == pytest.approx(expected[Path(r["path"]).name], abs=1e-5)
        assert r["score"] == pytest.approx(min(1, max(0, r["raw_score"])), abs=1e-6)
        assert r["model_id"] == Predictor.from_checkpoint(tiny_checkpoint, "cpu",
                                                          engine="torch").model_id
        assert (r["width"], r["height"]) == (48, 40)
    assert rows[0]["percentile"] == 100.0 and rows[-1]["percentile"] == 0.0
    assert rows[3]["percentile"] == 50.0


def test_second_run_answers_from_the_cache_without_model_or_hashing(
        tmp_path, make_photos, tiny_checkpoint, monkeypatch, model_calls):
    photos = make_photos(5)
    db = tmp_path / "c.db"
    first, result = score_json(photos[0].parent, tiny_checkpoint, db)
    assert sorted(n for call in model_calls for n in call) == sorted(p.name for p in photos)
    assert "0 from the cache, 5 scored now" in result.stderr
    forbid_model_and_hashing(monkeypatch)
    second, result = score_json(photos[0].parent, tiny_checkpoint, db)
    assert second == first
    assert "5 from the cache, 0 scored now" in result.stderr


def test_cached_rescan_does_not_import_torch(tmp_path, make_photos, tiny_checkpoint):
    photos = make_photos(3)
    db = tmp_path / "c.db"
    first, _ = score_json(photos[0].parent, tiny_checkpoint, db)
    again, torch_loaded = score_in_a_fresh_process(
        [photos[0].parent, "-w", tiny_checkpoint, "--cache", db])
    assert not torch_loaded
    assert again == first


def test_renamed_file_is_not_rescored_but_an_edited_one_is(
        tmp_path, make_photos, tiny_checkpoint, model_calls):
    photos = make_photos(4)
    db = tmp_path / "c.db"
    before, _ = score_json(photos[0].parent, tiny_checkpoint, db)
    by_name = {Path(r["path"]).name: r for r in before}
    model_calls.clear()

    moved = photos[0].parent / "sub" / "renamed.jpg"
    moved.parent.mkdir()
    photos[0].rename(moved)
    write_photo(photos[1], color=(250, 10, 10))  # edited in place
    st = photos[1].stat()
    os.utime(photos[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    after, _ = score_json(photos[0].parent, tiny_checkpoint, db)
    assert model_calls == [[photos[1].name]]  # only the edited photo met the model
    after_by_name = {Path(r["path"]).name: r for r in after}
    assert after_by_name["renamed.jpg"]["raw_score"] == by_name[photos[0].name]["raw_score"]
    assert after_by_name["renamed.jpg"]["content_hash"] == by_name[photos[0].name]["content_hash"]
    assert after_by_name[photos[1].name]["content_hash"] != by_name[photos[1].name]["content_hash"]
    assert after_by_name[photos[1].name]["raw_score"] != by_name[photos[1].name]["raw_score"]


def test_copies_of_one_photo_are_scored_once(tmp_path, tiny_checkpoint, model_calls):
    a = write_photo(tmp_path / "lib" / "a.jpg", color=(1, 2, 3))
    (tmp_path / "lib" / "b.jpg").write_bytes(a.read_bytes())
    rows, _ = score_json(tmp_path / "lib", tiny_checkpoint, tmp_path / "c.db")
    assert sum(len(c) for c in model_calls) == 1
    assert rows[0]["raw_score"] == rows[1]["raw_score"]
    assert rows[0]["percentile"] == rows[1]["percentile"] == 50.0  # ties: half lower


def test_two_models_keep_separate_scores(tmp_path, make_photos, model_calls):
    photos = make_photos(3)
    db = tmp_path / "c.db"
    a = tiny_checkpoint_at(tmp_path / "a.pt", seed=1)
    b = tiny_checkpoint_at(tmp_path / "b.pt", seed=2)
    rows_a, _ = score_json(photos[0].parent, a, db)
    rows_b, _ = score_json(photos[0].parent, b, db)
    assert len(model_calls) == 2  # model b did not reuse model a's scores
    assert {r["model_id"] for r in rows_a}.isdisjoint({r["model_id"] for r in rows_b})
    scores_a = {r["path"]: r["raw_score"] for r in rows_a}
    assert scores_a != {r["path"]: r["raw_score"] for r in rows_b}
    again, _ = score_json(photos[0].parent, a, db)
    assert len(model_calls) == 2 and {r["path"]: r["raw_score"] for r in again} == scores_a
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT model) FROM scores").fetchone() \
            == (6, 2)
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 3  # shared


def old_cache(db, photos, ckpt, stale_score):
    """A cache as memo wrote it before model ids named preprocessing and precision: every
    photo scored (``stale_score``) and the checkpoint remembered under ``name-digest``."""
    from memocli.files import hash_file

    old_id = checkpoint.load_checkpoint(ckpt).checkpoint_id
    migrations = cache_migrations.MIGRATIONS
    cache_migrations.MIGRATIONS = migrations[:4]  # m001-m004: the schema of the old memo
    try:
        with Cache(db) as c:
            hashes = [hash_file(p) for p in photos]
            c.record_files([(str(p.resolve()), h, p.stat().st_size, p.stat().st_mtime_ns)
                            for p, h in zip(photos, hashes, strict=True)])
            c.record_scores(old_id, [(h, stale_score) for h in hashes])
            st = ckpt.stat()
            c.db.execute("INSERT INTO checkpoints (path, size, mtime_ns, model) VALUES "
                         "(?, ?, ?, ?)", [str(ckpt.resolve()), st.st_size, st.st_mtime_ns, old_id])
            c.db.conn.commit()
    finally:
        cache_migrations.MIGRATIONS = migrations
    return old_id


def test_a_cache_from_before_versioned_ids_is_recomputed_once_not_mixed(
        tmp_path, make_photos, tiny_checkpoint, monkeypatch, model_calls):
    photos = make_photos(3)
    db = tmp_path / "c.db"
    old_id = old_cache(db, photos, tiny_checkpoint, stale_score=0.123)
    rows, result = score_json(photos[0].parent, tiny_checkpoint, db, "--precision", "fp32")
    assert sorted(n for call in model_calls for n in call) == sorted(p.name for p in photos)
    assert "0 from the cache, 3 scored now" in result.stderr
    assert all(r["raw_score"] != pytest.approx(0.123) for r in rows)
    assert {r["model_id"] for r in rows} == {f"{old_id}-p{PREPROCESSING_VERSION}-fp32"}
    forbid_model_and_hashing(monkeypatch)  # once recomputed, a re-scan needs no model
    again, _ = score_json(photos[0].parent, tiny_checkpoint, db, "--precision", "fp32")
    assert again == rows


def test_each_precision_keeps_its_own_scores(tmp_path, make_photos, tiny_checkpoint,
                                             monkeypatch, model_calls):
    photos = make_photos(3)
    db = tmp_path / "c.db"
    fp32, _ = score_json(photos[0].parent, tiny_checkpoint, db, "--precision", "fp32")
    bf16, _ = score_json(photos[0].parent, tiny_checkpoint, db, "--precision", "bf16")
    assert len(model_calls) == 2  # the bf16 run did not reuse the fp32 rows
    assert {r["model_id"].rsplit("-", 1)[1] for r in fp32} == {"fp32"}  # torch, the CPU
    assert {r["model_id"].rsplit("-", 1)[1] for r in bf16} == {"bf16"}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT model) FROM scores").fetchone() \
            == (6, 2)
    again, _ = score_json(photos[0].parent, tiny_checkpoint, db, "--precision", "fp32",
                          "--device", "auto")  # another setup, the same fp32 model id
    assert len(model_calls) == 2 and again == fp32
    with Cache(db) as c:
        listed = {m["model"]: m["checkpoints"] for m in c.info()["models"]}
    assert listed[fp32[0]["model_id"]] == [str(tiny_checkpoint.resolve())]  # listed once
    forbid_model_and_hashing(monkeypatch)  # each precision's id is remembered
    assert score_json(photos[0].parent, tiny_checkpoint, db, "--precision", "fp32")[0] == fp32
    assert score_json(photos[0].parent, tiny_checkpoint, db, "--precision", "bf16")[0] == bf16


def test_interrupted_run_keeps_finished_batches_and_the_next_run_finishes(
        tmp_path, make_photos, tiny_checkpoint, monkeypatch):
    photos = make_photos(7)
    db = tmp_path / "c.db"

    def two_batches_then_ctrl_c(predictor, paths, *args, **kwargs):
        for n, batch in enumerate(REAL_PREDICT(predictor, paths, *args, **kwargs)):
            if n == 2:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(Predictor, "iter_predictions", two_batches_then_ctrl_c)
    result = invoke(["score", str(photos[0].parent), "-w", str(tiny_checkpoint), "--cache",
                     str(db), "--batch-size", "2", "--workers", "0"], code=130)
    assert "4 new score(s) so far are saved" in result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 4
    calls = []

    def counting(predictor, paths, *args, **kwargs):
        calls.append(len(paths))
        yield from REAL_PREDICT(predictor, paths, *args, **kwargs)

    monkeypatch.setattr(Predictor, "iter_predictions", counting)
    rows, _ = score_json(photos[0].parent, tiny_checkpoint, db, "--batch-size", "2")
    assert calls == [3] and len(rows) == 7


def test_bad_files_are_reported_skipped_and_make_exit_1(tmp_path, make_photos,
                                                        tiny_checkpoint):
    photos = make_photos(3)
    lib = photos[0].parent
    (lib / "notes.jpg").write_text("this is not a picture")
    truncated = lib / "truncated.png"
    truncated.write_bytes(write_photo(tmp_path / "t.png").read_bytes()[:60])
    (lib / "readme.txt").write_text("ignored: not an image extension")
    rows, result = score_json(lib, tiny_checkpoint, tmp_path / "c.db", code=1)
    assert sorted(Path(r["path"]).name for r in rows) == sorted(p.name for p in photos)
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"skipped {lib / 'notes.jpg'}: ") for line in lines)
    assert any(line.startswith(f"skipped {truncated}: ") for line in lines)
    assert lines[-1] == "Error: 2 file(s) skipped (reasons above); the others were scored"
    assert "Traceback" not in result.output


def test_unreadable_file_is_skipped(tmp_path, make_photos, tiny_checkpoint, monkeypatch):
    photos = make_photos(2)
    real_hash = score.hash_file

    def hash_or_deny(path):  # as chmod 000 would, even for root
        if Path(path) == photos[0]:
            raise PermissionError(13, "Permission denied")
        return real_hash(path)

    monkeypatch.setattr(score, "hash_file", hash_or_deny)
    rows, result = score_json(photos[0].parent, tiny_checkpoint, tmp_path / "c.db", code=1)
    assert [Path(r["path"]).name for r in rows] == [photos[1].name]
    assert f"skipped {photos[0]}: permission denied" in result.stderr


def test_top_and_bottom_pick_rows_and_table_shows_them(tmp_path, make_photos, tiny_checkpoint):
    photos = make_photos(6)
    db = tmp_path / "c.db"
    everything, _ = score_json(photos[0].parent, tiny_checkpoint, db)
    some, _ = score_json(photos[0].parent, tiny_checkpoint, db, "--top", "2", "--bottom", "1")
    assert [r["rank"] for r in some] == [1, 2, 6]
    assert some == [everything[0], everything[1], everything[5]]
    table = invoke(["score", str(photos[0].parent), "--top", "2", "-w", str(tiny_checkpoint),
                    "--cache", str(db)]).stdout
    for header in ("Rank", "Score", "Pct", "Path", "Taken", "Camera"):
        assert header in table
    best, worst = Path(everything[0]["path"]).name, Path(everything[5]["path"]).name
    assert best in table and worst not in table
    assert "2 of 6 photo(s)" in table


def test_files_and_folders_can_be_mixed_and_csv_printed(tmp_path, make_photos,
                                                        tiny_checkpoint):
    photos = make_photos(3)
    other = write_photo(tmp_path / "elsewhere" / "x.PNG")
    out = invoke(["score", str(photos[0]), str(other), str(photos[1].parent), "--csv",
                  "-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db")]).stdout
    lines = out.splitlines()
    assert lines[0].startswith("rank,path,score,percentile,content_hash")
    assert len(lines) == 1 + 4  # photos[0] named twice, listed once


def test_no_cache_stores_nothing(tmp_path, make_photos, tiny_checkpoint, isolated_memo_home):
    photos = make_photos(2)
    rows, _ = score_json(photos[0].parent, tiny_checkpoint, tmp_path / "unused.db")
    result = invoke(["score", str(photos[0].parent), "--json", "--no-cache", "-w",
                     str(tiny_checkpoint)])
    assert json.loads(result.stdout) == rows
    assert not (isolated_memo_home / "memo.db").exists()
    invoke(["score", str(photos[0].parent), "--no-cache", "--cache", "x.db"], code=2)


def test_default_cache_lives_under_memo_home(make_photos, tiny_checkpoint, isolated_memo_home):
    photos = make_photos(1)
    invoke(["score", str(photos[0]), "-w", str(tiny_checkpoint), "-s"])
    assert (isolated_memo_home / "memo.db").is_file()


def test_missing_default_weights_is_a_one_line_error(tmp_path, make_photos, monkeypatch):
    from memocli import catalog

    monkeypatch.setattr(catalog, "_PACKAGE_DIR", tmp_path / "site-packages" / "memocli")
    photos = make_photos(1)
    result = invoke(["score", str(photos[0])], code=1)
    assert result.stderr.startswith("Error: the default model memo-vnet-r50.pt is missing")
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke(["score", str(photos[0]), "-w", str(tmp_path / "nope.pt")], code=1)
    assert "nope.pt: cannot read checkpoint" in result.stderr
    not_ckpt = tmp_path / "bad.pt"
    not_ckpt.write_bytes(b"garbage")
    result = invoke(["score", str(photos[0]), "-w", str(not_ckpt)], code=1)
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output


def test_empty_folder_is_an_error(tmp_path, tiny_checkpoint):
    (tmp_path / "empty").mkdir()
    result = invoke(["score", str(tmp_path / "empty"), "-w", str(tiny_checkpoint)], code=1)
    assert "no images found" in result.stderr


def test_decoding_in_worker_processes(tmp_path, make_photos, tiny_checkpoint):
    photos = make_photos(5)
    rows, _ = score_json(photos[0].parent, tiny_checkpoint, tmp_path / "c.db",
                         "--batch-size", "2", "--workers", "1")
    expected = model_scores(tiny_checkpoint, photos)
    assert len(rows) == 5
    for r in rows:
        assert r["raw_score"] == pytest.approx(expected[Path(r["path"]).name], abs=1e-5)


def test_exif_orientation_is_applied_before_scoring(tmp_path, tiny_checkpoint):
    from PIL import Image

    upright = write_photo(tmp_path / "lib" / "upright.png", size=(40, 60))
    stored = Image.open(upright).transpose(Image.Transpose.ROTATE_90)  # as a camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    stored.save(tmp_path / "lib" / "sideways.png", exif=exif)
    stored.save(tmp_path / "lib" / "untagged.png")  # the same pixels, orientation unknown
    rows, _ = score_json(tmp_path / "lib", tiny_checkpoint, tmp_path / "c.db")
    by = {Path(r["path"]).name: r for r in rows}
    assert (by["sideways.png"]["width"], by["sideways.png"]["height"]) == (40, 60)
    assert (by["untagged.png"]["width"], by["untagged.png"]["height"]) == (60, 40)
    assert by["sideways.png"]["raw_score"] == pytest.approx(by["upright.png"]["raw_score"],
                                                            abs=1e-6)
    assert by["untagged.png"]["raw_score"] != pytest.approx(by["upright.png"]["raw_score"],
                                                            abs=1e-6)


def test_misspelt_device_is_a_usage_error_even_when_all_is_cached(tmp_path, make_photos,
                                                                  tiny_checkpoint):
    photos = make_photos(2)
    db = tmp_path / "c.db"
    score_json(photos[0].parent, tiny_checkpoint, db)
    result = invoke(["score", str(photos[0].parent), "-w", str(tiny_checkpoint), "--cache",
                     str(db), "--device", "gpu"], code=2)
    assert "'gpu' is not auto, cpu, cuda, cuda:N or mps" in result.stderr


def test_report_and_score_explain_load_the_model_once_and_decode_each_top_photo_once(
        tmp_path, make_photos, tiny_checkpoint, monkeypatch):
    from memocli import explain, report

    photos = make_photos(4)
    db = tmp_path / "c.db"
    score_json(photos[0].parent, tiny_checkpoint, db)  # scores cached: no decode to score
    counts = {"load": 0, "network decode": [], "thumbnail decode": [], "full decode": []}
    real_load, real_photo = checkpoint.load_checkpoint, Predictor.load_photo

    def load(*args, **kwargs):
        counts["load"] += 1
        return real_load(*args, **kwargs)

    def counted(key, real):
        def decode(*args, **kwargs):
            counts[key].append(Path(args[-1] if key == "network decode" else args[0]).name)
            return real(*args, **kwargs)
        return decode

    monkeypatch.setattr(checkpoint, "load_checkpoint", load)
    monkeypatch.setattr(Predictor, "load_photo", counted("network decode", real_photo))
    monkeypatch.setattr(report, "load_image", counted("thumbnail decode", report.load_image))
    monkeypatch.setattr(explain, "load_image", counted("full decode", explain.load_image))
    invoke(["report", str(photos[0].parent), "--out", str(tmp_path / "r.html"), "-w",
            str(tiny_checkpoint), "--cache", str(db), "--heatmaps", "2", "--workers", "0", "-s"])
    assert counts["load"] == 1
    assert len(counts["network decode"]) == 2  # the two heatmaps' photos, once each
    assert sorted(counts["network decode"] + counts["thumbnail decode"]) == \
        sorted(p.name for p in photos)  # a heatmap's photo makes its thumbnail too

    counts.update({"load": 0, "network decode": [], "full decode": []})
    result = invoke(["score", str(photos[0].parent), "--top", "2", "--json", "-w",
                     str(tiny_checkpoint), "--cache", str(tmp_path / "new.db"),
                     "--explain", str(tmp_path / "maps"), "--workers", "0", "-s"])
    assert counts["load"] == 1  # the model that scored drew the heatmaps
    assert len(counts["network decode"]) == 2 and counts["full decode"] == []  # small photos
    assert result.stdout.startswith("[") and "->" in result.stderr
