"""EXIF dates that are no real date (2019:02:30, day or month 00, month 13, 24:00:00,
second 60) are read as unknown (or as the date alone), never crash a command, and a cache
that stored one before dates were checked reads it as unknown."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import invoke
from test_bursts import scene

from memocli.exif import parse_exif_date

IMPOSSIBLE = {
    "feb-30.jpg": ("2019:02:30 10:00:00", None),
    "day-00.jpg": ("2019:07:00 10:00:00", None),
    "month-00.jpg": ("2019:00:14 10:00:00", None),
    "month-13.jpg": ("2019:13:14 10:00:00", None),
    "hour-24.jpg": ("2019:07:14 24:00:00", "2019-07-14"),
    "second-60.jpg": ("2019:07:14 10:00:60", "2019-07-14"),
}


@pytest.mark.parametrize("text,expected", [
    *IMPOSSIBLE.values(),
    ("2019:07:14 18:03:22", "2019-07-14T18:03:22"),
    ("2020:02:29 23:59:59", "2020-02-29T23:59:59"),  # a leap day is a real date
    ("2019:07:14", "2019-07-14"),
    ("0000:00:00 00:00:00", None),
])
def test_parse_exif_date_keeps_only_real_dates_and_times(text, expected):
    assert parse_exif_date(text) == expected


@pytest.fixture
def library(tmp_path) -> Path:
    lib = tmp_path / "lib"
    for seed, (name, (taken, _)) in enumerate(IMPOSSIBLE.items()):
        scene(lib / name, seed, taken=taken)
    scene(lib / "real.jpg", 99, taken="2019:07:14 10:00:01")
    return lib


def common(ckpt: Path, db: Path) -> list[str]:
    return ["-w", str(ckpt), "--cache", str(db), "--workers", "0", "-s"]


def dates_of(rows) -> dict[str, str | None]:
    return {Path(r["path"]).name: r["date_taken"] or None for r in rows}


EXPECTED = {**{name: date for name, (_, date) in IMPOSSIBLE.items()},
            "real.jpg": "2019-07-14T10:00:01"}


@pytest.mark.slow
def test_every_command_runs_on_photos_with_impossible_dates(library, tiny_checkpoint,
                                                             tmp_path):
    opts = common(tiny_checkpoint, tmp_path / "c.db")
    rows = json.loads(invoke(["score", str(library), "--json", *opts]).stdout)
    assert dates_of(rows) == EXPECTED
    table = invoke(["score", str(library), "--csv", *opts]).stdout
    assert dates_of(csv.DictReader(io.StringIO(table))) == EXPECTED
    invoke(["score", str(library), "--one-per-burst", *opts])  # timed bursts compared
    invoke(["export", str(library), str(tmp_path / "out.csv"), *opts])
    invoke(["report", str(library), "--out", str(tmp_path / "r.html"), "--heatmaps", "0",
            *opts])


@pytest.mark.slow
def test_an_impossible_date_already_in_a_cache_reads_as_unknown(library, tiny_checkpoint,
                                                                 tmp_path):
    db = tmp_path / "c.db"
    opts = common(tiny_checkpoint, db)
    invoke(["export", str(library), "-", "--format", "json", *opts])
    with sqlite3.connect(db) as conn:  # as a memo before the check stored them
        conn.execute("UPDATE images SET taken_at = '2019-02-30T10:00:00'")
        conn.execute("UPDATE images SET taken_at = '2019-07-14T24:00:00' WHERE rowid = 1")
    rows = json.loads(invoke(["export", str(library), "-", "--format", "json",
                              "--one-per-burst", *opts]).stdout)
    assert set(dates_of(rows).values()) == {None}
    invoke(["report", str(library), "--out", str(tmp_path / "r.html"), "--heatmaps", "0",
            *opts])
