"""A diverse top N (maximal marginal relevance on the cached features) and the top of each
group: deterministic, ties broken by rank, working with --one-per-burst."""

import json

import numpy as np
import pytest
from conftest import invoke, write_photo

from memocli.cache import ImageMeta
from memocli.ranking import rank
from memocli.score import ScoredFile
from memocli.selection import arrange, diverse, grouped


def photo(name, raw, direction, taken=None, folder="a"):
    vector = np.zeros(8, dtype="<f2")
    vector[direction] = 1
    return ScoredFile(f"{folder}/{name}", f"/{folder}/{name}", name, raw,
                      ImageMeta(100, 100, taken, None, "photo"), vector.tobytes())


def names(rows):
    return [r.item.path.rsplit("/", 1)[-1] for r in rows]


def test_a_diverse_top_passes_over_look_alikes_for_the_next_best_other_photo():
    foods = [photo(f"food{i}", 0.90 - i / 100, 0) for i in range(3)]
    others = [photo(f"other{i}", 0.80 - i / 100, 1 + i % 7) for i in range(8)]
    ranked = rank(foods + others)  # percentiles 100, 90, 80 for the foods, then 70 ... 0
    assert names(arrange(ranked, 3, None)) == ["food0", "food1", "food2"]
    picks = names(diverse(ranked, 3))
    assert picks[:3] == ["food0", "other0", "other1"]  # 0.7 x 0.9 - 0.3 x 1 < 0.7 x 0.6
    assert picks[3:] == names(ranked[1:3] + ranked[5:])  # the rest in rank order
    assert names(diverse(ranked, 3, trade_off=1.0))[:3] == ["food0", "food1", "food2"]


def test_the_best_photo_of_a_kind_that_scores_lower_makes_the_diverse_top():
    # Twelve plates of food score above twelve landscapes (people remember close-ups
    # better); their features differ by kind, with a little noise within each kind.
    rng = np.random.default_rng(0)

    def kind_photo(name, raw, direction):
        vector = (np.eye(8)[direction] + rng.normal(0, 0.05, 8)).astype("<f2")
        return ScoredFile(name, f"/{name}", name, raw, ImageMeta(100, 100, None, None, "photo"),
                          vector.tobytes())

    foods = [kind_photo(f"food{i}", 0.90 - i / 100, 0) for i in range(12)]
    scenes = [kind_photo(f"scene{i}", 0.60 - i / 100, 1) for i in range(12)]
    ranked = rank(scenes + foods)
    assert names(arrange(ranked, 3, None)) == ["food0", "food1", "food2"]
    picks = names(diverse(ranked, 3))[:3]
    assert picks[0] == "food0" and "scene0" in picks  # the best landscape, not any landscape
    assert {p[:4] for p in picks} == {"food", "scen"}


def test_the_diverse_order_is_deterministic_and_ties_go_to_the_better_rank():
    files = [photo(f"same{i}", 0.8, i % 2) for i in range(6)]  # equal scores, two looks
    ranked = rank(files)
    first = names(diverse(ranked, 4))
    assert first == names(diverse(list(ranked), 4))
    assert first[:2] == ["same0", "same1"]  # by path among equals, then the other look


def test_without_features_every_photo_counts_as_unlike_the_others():
    files = [ScoredFile(f"p{i}.jpg", f"/p{i}.jpg", str(i), 0.9 - i / 10, ImageMeta())
             for i in range(4)]
    assert names(diverse(rank(files), 3)) == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]


def test_group_by_folder_day_and_kind_show_the_top_of_each():
    files = [photo("a1", 0.9, 0, "2024-05-01T10:00:00", "trip"),
             photo("a2", 0.5, 1, "2024-05-02T10:00:00", "trip"),
             photo("a3", 0.4, 2, "2024-05-02T11:00:00", "trip"),
             photo("b1", 0.8, 3, None, "home"), photo("b2", 0.7, 4, None, "home")]
    ranked = rank(files)
    by_folder = grouped(ranked, "folder", 1)
    assert [(r.group, names([r])[0]) for r in by_folder] == [("trip", "a1"), ("home", "b1")]
    by_day = grouped(ranked, "day", 2)
    assert [r.group for r in by_day] == ["2024-05-01", "unknown day", "unknown day",
                                         "2024-05-02", "2024-05-02"]
    assert [r.group for r in grouped(ranked, "kind", None)] == ["photo"] * 5


def test_diverse_and_group_by_on_the_command_line(tmp_path, tiny_checkpoint):
    lib = tmp_path / "lib"
    for i in range(4):
        write_photo(lib / "x" / f"p{i}.jpg", color=(30 + 50 * i, 90, 200 - 40 * i))
        write_photo(lib / "y" / f"q{i}.jpg", color=(200 - 40 * i, 30 + 50 * i, 90))
    common = [str(lib), "-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db")]
    plain = json.loads(invoke(["score", *common, "--json", "--top", "3"]).stdout)
    varied = json.loads(invoke(["score", *common, "--json", "--top", "3", "--diverse"]).stdout)
    assert varied[0] == plain[0] and len(varied) == 3
    assert varied == json.loads(invoke(["score", *common, "--json", "--top", "3",
                                        "--diverse"]).stdout)
    best_frames = json.loads(invoke(["score", *common, "--json", "--top", "3", "--diverse",
                                     "--one-per-burst"]).stdout)
    assert best_frames and all(r["burst"] == r["rank"] for r in best_frames)
    groups = json.loads(invoke(["score", *common, "--json", "--top", "1", "--group-by",
                                "folder"]).stdout)
    assert sorted(r["group"].rsplit("/", 1)[1] for r in groups) == ["x", "y"]
    table = invoke(["score", *common, "--top", "1", "--group-by", "folder", "-s"]).stdout
    assert f"[{lib}/x]" in table and f"[{lib}/y]" in table
    assert "--bottom" in invoke(["score", *common, "--bottom", "2", "--diverse"],
                                code=2).stderr


@pytest.mark.parametrize("command", ["export", "report"])
def test_export_and_report_take_diverse(tmp_path, tiny_checkpoint, command):
    lib = tmp_path / "lib"
    for i in range(3):
        write_photo(lib / f"p{i}.jpg", color=(30 + 70 * i, 90, 200 - 60 * i))
    out = tmp_path / ("out.json" if command == "export" else "out.html")
    where = [str(out)] if command == "export" else ["--out", str(out), "--heatmaps", "0"]
    invoke([command, str(lib), *where, "-w", str(tiny_checkpoint), "--cache",
            str(tmp_path / "c.db"), "--diverse", "-s"])
    assert out.stat().st_size > 0
