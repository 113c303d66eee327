"""Bursts: grouping by time taken and feature similarity; --one-per-burst; the burst column."""

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke
from PIL import Image, ImageDraw, ImageEnhance

from memocli.bursts import group, rank_bursts, seconds_of, untimed_threshold
from memocli.cache import ImageMeta
from memocli.predictor import Predictor
from memocli.score import ScoredFile

REAL_PREDICT = Predictor.iter_predictions


def scene(path: Path, seed: int, shift: int = 0, brightness: float = 1.0,
          taken: str | None = None) -> Path:
    """A random picture of coloured blobs; ``shift``/``brightness`` make a burst frame."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (64, 48), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = rng.integers(0, 64), rng.integers(0, 48)
        draw.ellipse([x - 10, y - 8, x + 10, y + 8],
                     fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    img = img.transform(img.size, Image.AFFINE, (1, 0, shift, 0, 1, 0),
                        fillcolor=img.getpixel((0, 0)))
    img = ImageEnhance.Brightness(img).enhance(brightness)
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken  # DateTimeOriginal
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif, quality=95)
    return path


# --- grouping, with given times and vectors -------------------------------------------------

E = np.eye(4)
NEAR = E[0] + 0.1 * E[1]  # cosine similarity to E[0]: 0.995


def test_similar_photos_seconds_apart_form_one_burst():
    assert group([0, 2, 3], [E[0], NEAR, E[0]], seconds=3, similarity=0.9) == [0, 0, 0]


def test_same_second_but_unrelated_is_not_a_burst():
    assert group([5, 5], [E[0], E[1]], seconds=3, similarity=0.9) == [0, 1]


def test_similar_but_too_far_apart_is_not_a_burst():
    assert group([0, 4], [E[0], E[0]], seconds=3, similarity=0.9) == [0, 1]
    assert group([0, 4], [E[0], E[0]], seconds=4, similarity=0.9) == [0, 0]


def test_a_chain_of_frames_is_one_burst_even_when_its_ends_are_far_apart():
    times = [0, 2, 4, 6, 100]
    assert group(times, [E[0]] * 5, seconds=3, similarity=0.9) == [0, 0, 0, 0, 4]


def test_order_of_input_does_not_matter_and_the_lowest_index_names_the_burst():
    assert group([9, 1, 5, 2], [E[2], E[0], E[2], NEAR], seconds=5, similarity=0.9) == [
        0, 1, 0, 1]


def test_photos_without_a_time_need_the_stricter_similarity():
    assert untimed_threshold(0.8) == pytest.approx(0.9)
    a = E[0]
    b = np.array([0.95, np.sqrt(1 - 0.95**2), 0, 0])  # cosine 0.95 to a
    c = np.array([0.85, np.sqrt(1 - 0.85**2), 0, 0])  # cosine 0.85 to a
    assert group([None, None], [a, b], similarity=0.8) == [0, 0]
    assert group([None, None], [a, c], similarity=0.8) == [0, 1]
    assert group([0, 1], [a, c], similarity=0.8) == [0, 0]  # with times, 0.85 is enough


def test_timed_and_untimed_photos_are_never_linked_nor_photos_without_features():
    assert group([0, None], [E[0], E[0]]) == [0, 1]
    assert group([0, 0, None, None], [None, E[0], None, E[0]]) == [0, 1, 2, 3]


def test_many_untimed_photos_are_compared_in_blocks(monkeypatch):
    from memocli import bursts

    monkeypatch.setattr(bursts, "_BLOCK", 3)
    vectors = [E[i % 2] for i in range(8)]
    assert group([None] * 8, vectors) == [0, 1] * 4


def test_seconds_of_needs_a_time_of_day():
    assert seconds_of("2026-03-01T10:00:03") - seconds_of("2026-03-01T10:00:00") == 3
    assert seconds_of("2026-03-01") is None and seconds_of(None) is None


def scored(name, raw, taken, vector):
    return ScoredFile(name, "/" + name, "h-" + name, raw, ImageMeta(taken_at=taken),
                      np.asarray(vector, dtype="<f2").tobytes())


def test_rank_bursts_names_each_burst_by_its_best_frame_and_can_keep_only_those():
    t = "2026-03-01T10:00:0"
    files = [scored("a1.jpg", 0.5, t + "0", E[0]), scored("a2.jpg", 0.7, t + "1", NEAR),
             scored("b.jpg", 0.9, t + "1", E[1]), scored("c.jpg", 0.1, None, E[2])]
    ranked = rank_bursts(files, seconds=3, similarity=0.9)
    assert [(r.item.path, r.rank, r.burst) for r in ranked] == [
        ("b.jpg", 1, 1), ("a2.jpg", 2, 2), ("a1.jpg", 3, 2), ("c.jpg", 4, 4)]
    best = rank_bursts(files, seconds=3, similarity=0.9, one_per_burst=True)
    assert [(r.item.path, r.rank, r.burst, r.percentile) for r in best] == [
        ("b.jpg", 1, 1, 100.0), ("a2.jpg", 2, 2, 50.0), ("c.jpg", 3, 3, 0.0)]


# --- end to end: features in the cache, the CLI options ------------------------------------

def write_burst_and_other(lib: Path) -> None:
    """Three frames of one burst (shifted, relit) and an unrelated photo taken in the same
    second: ``burst_0..2.jpg`` and ``other.jpg``."""
    t = "2026:03:01 10:00:0"
    scene(lib / "burst_0.jpg", 1, taken=t + "0")
    scene(lib / "burst_1.jpg", 1, shift=2, brightness=1.08, taken=t + "1")
    scene(lib / "burst_2.jpg", 1, shift=-2, brightness=0.94, taken=t + "2")
    scene(lib / "other.jpg", 2, taken=t + "1")


@pytest.fixture
def burst_library(tmp_path):
    """:func:`write_burst_and_other`, and a photo without a time taken."""
    lib = tmp_path / "lib"
    write_burst_and_other(lib)
    scene(lib / "plain.jpg", 3)
    return lib


def export_rows(lib, ckpt, db, *extra):
    # A random tiny model's features are alike for any two pictures (cosine > 0.85), but
    # burst frames still stand out (> 0.98): hence the high --burst-similarity.
    out = invoke(["export", str(lib), "-", "--format", "json", "-w", str(ckpt), "--cache",
                  str(db), "--workers", "0", "--burst-similarity", "0.97", "-s", *extra])
    return {Path(r["path"]).name: r for r in json.loads(out.stdout)}


@pytest.mark.slow
def test_burst_frames_are_grouped_and_one_per_burst_keeps_the_best(tmp_path, burst_library,
                                                                    tiny_checkpoint):
    db = tmp_path / "c.db"
    rows = export_rows(burst_library, tiny_checkpoint, db)
    frames = [rows[f"burst_{i}.jpg"] for i in range(3)]
    best = min(frames, key=lambda r: r["rank"])
    assert {r["burst"] for r in frames} == {best["rank"]}
    assert rows["other.jpg"]["burst"] == rows["other.jpg"]["rank"]  # same second, unrelated
    assert rows["plain.jpg"]["burst"] == rows["plain.jpg"]["rank"]
    with sqlite3.connect(db) as conn:
        lengths = conn.execute("SELECT length(vector) FROM features").fetchall()
    assert lengths == [(2048 * 2,)] * 5  # float16, ResNet's last block

    kept = export_rows(burst_library, tiny_checkpoint, db, "--one-per-burst")
    assert sorted(kept) == sorted([Path(best["path"]).name, "other.jpg", "plain.jpg"])
    assert sorted(r["rank"] for r in kept.values()) == [1, 2, 3]
    assert all(r["burst"] == r["rank"] for r in kept.values())

    table = invoke(["score", str(burst_library), "--one-per-burst", "--burst-similarity",
                    "0.97", "-w", str(tiny_checkpoint), "--cache", str(db)]).stdout
    assert sum(f"burst_{i}.jpg" in table for i in range(3)) == 1
    assert "3 of 5 photo(s)" in table
    apart = export_rows(burst_library, tiny_checkpoint, db, "--burst-seconds", "0")
    assert len({r["burst"] for r in apart.values()}) == 5  # each frame a second apart


@pytest.mark.slow
def test_cached_features_are_reused_and_missing_ones_computed_once(
        tmp_path, burst_library, tiny_checkpoint, monkeypatch):
    db = tmp_path / "c.db"
    first = export_rows(burst_library, tiny_checkpoint, db)
    calls = []

    def counting(predictor, paths, *args, **kwargs):
        calls.append(sorted(Path(p).name for p in paths))
        yield from REAL_PREDICT(predictor, paths, *args, **kwargs)

    monkeypatch.setattr(Predictor, "iter_predictions", counting)
    assert export_rows(burst_library, tiny_checkpoint, db) == first
    assert calls == []  # scores and features both from the cache
    with sqlite3.connect(db) as conn:  # as if two photos were scored before features existed
        conn.execute("DELETE FROM features WHERE content_hash IN (SELECT content_hash FROM "
                     "files WHERE path LIKE '%burst_1.jpg' OR path LIKE '%plain.jpg')")
    again = export_rows(burst_library, tiny_checkpoint, db)
    assert calls == [["burst_1.jpg", "plain.jpg"]]
    assert {k: r["burst"] for k, r in again.items()} == {k: r["burst"] for k, r in first.items()}
    invoke(["score", str(burst_library), "-w", str(tiny_checkpoint), "--cache", str(db)])
    assert len(calls) == 1  # a table without --one-per-burst needs no features
