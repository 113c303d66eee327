"""memo agreement on a generated library whose stars are known, against figures computed
here from memo export's scores and percentiles."""

from __future__ import annotations

import json
import os
import statistics
import subprocess

from conftest import invoke, write_photo
from xmp_samples import darktable_sidecar, needs_exiftool

pytestmark = needs_exiftool

#: photo -> (stars, where the user's rating is kept); -1 is a reject, None unrated.
STARS = {
    "a/p0.jpg": (5, "darktable"), "a/p1.jpg": (4, "darktable"), "a/p2.jpg": (1, "darktable"),
    "a/p3.jpg": (3, "embedded"), "a/p4.jpg": (-1, "darktable"), "a/p5.jpg": (None, None),
    "b/q0.JPG": (2, "adobe"), "b/q1.jpg": (5, "embedded"), "b/q2.jpg": (4, "darktable"),
    "b/q3.jpg": (1, "darktable"), "b/q4.jpg": (None, None), "b/q5.jpg": (3, "darktable"),
}


def spearman(xs, ys):
    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        r = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.mean(rx), statistics.mean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return num / den


def expected(rows, stars, folder=None):
    rows = [r for r in rows if folder is None or os.path.dirname(r["path"]) == folder]
    rated = [r for r in rows if (stars.get(r["path"]) or 0) >= 1]
    best = {r["path"] for r in rated if stars[r["path"]] >= 4}
    top = sorted(rows, key=lambda r: -r["raw_score"])[:len(best)]
    medians = {}
    for level in ("rejected", "1", "2", "3", "4", "5"):
        pcts = [r["percentile"] for r in rows
                if stars.get(r["path"]) == (-1 if level == "rejected" else int(level))]
        if pcts:
            medians[level] = statistics.median(pcts)
    return {"photos": len(rows), "rated": len(rated),
            "spearman": spearman([r["raw_score"] for r in rated],
                                 [stars[r["path"]] for r in rated]),
            "median": medians, "best": len(best),
            "hits": sum(r["path"] in best for r in top)}


def library(root):
    """Write the photos of :data:`STARS` and their ratings where each says."""
    for i, (name, (stars, where)) in enumerate(STARS.items()):
        photo = write_photo(root / name, color=(15 + 19 * i, 200 - 13 * i, 90 + 7 * i))
        if where == "darktable":
            darktable_sidecar(root / f"{name}.xmp", rating=stars)
        elif where == "embedded":
            subprocess.run(["exiftool", "-q", "-overwrite_original", f"-XMP-xmp:Rating={stars}",
                            str(photo)], check=True)
        elif where == "adobe":  # a RAW+JPEG pair rated in Lightroom: IMG.xmp is the RAW's
            (root / name).with_suffix(".NEF").write_bytes(b"raw")
            darktable_sidecar(root / "b/q0.xmp", rating=stars)


def test_agreement_gives_the_figures_of_the_known_stars(tmp_path, tiny_checkpoint):
    root = tmp_path / "lib"
    library(root)
    weights = ["-w", str(tiny_checkpoint)]
    # memo's own stars on the unrated photos: not the user's, so left out below
    invoke(["xmp", str(root), *weights, "--stars", "-s"])
    rows = json.loads(invoke(["export", str(root), "-", "--format", "json", *weights,
                              "-s"]).stdout)
    stars = {str(root / name): s for name, (s, _) in STARS.items() if s is not None}

    result = invoke(["agreement", str(root), *weights, "--json"])
    groups = {g["group"]: g for g in json.loads(result.stdout)}
    assert list(groups) == [str(root / "a"), str(root / "b"), "all"]
    assert "2 rating(s) written by memo xmp left out" in result.stderr  # a5, b4 only
    for name, folder in ((str(root / "a"), str(root / "a")), (str(root / "b"),
                                                              str(root / "b")), ("all", None)):
        want, got = expected(rows, stars, folder), groups[name]
        assert got["photos"] == want["photos"] and got["rated"] == want["rated"]
        assert abs(got["spearman"] - want["spearman"]) < 1e-3, name
        assert got["median_percentile"].keys() == want["median"].keys()
        assert all(abs(got["median_percentile"][k] - v) <= 0.011  # export rounds to 0.01
                   for k, v in want["median"].items())
        assert got["best"] == want["best"] and got["best_in_top_k"] == want["hits"]
    assert groups["all"]["rejected"] == 1 and groups["all"]["rated"] == 9

    text = invoke(["agreement", str(root), *weights, "--top", "3", "-s"]).output
    assert "all: 12 photo(s), 9 rated, 1 rejected" in text
    assert "your 4-5* photos in memo's top 3:" in text and "chance 25%" in text


def test_agreement_reads_sidecars_without_exiftool_and_says_so(tmp_path, tiny_checkpoint,
                                                               monkeypatch):
    root = tmp_path / "lib"
    library(root)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = invoke(["agreement", str(root), "-w", str(tiny_checkpoint), "--json"])
    assert "ratings inside the photos were not read (exiftool is not installed)" in (
        result.stderr)
    assert json.loads(result.stdout)[-1]["rated"] == 7  # the two embedded ones unread
