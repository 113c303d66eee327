"""Untrusted text (file names, EXIF fields, merged cache rows) in every output format.

Each output format has one escaping function in :mod:`memocli.escape`; these tests feed
hostile values through the real writers and check what comes out.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_photo
from PIL import Image

from memocli import escape
from memocli.cache import Cache, ImageMeta
from memocli.cli import cli
from memocli.output import print_table, write_csv, write_json
from memocli.ranking import LEGEND_LINES, Ranked
from memocli.report import Thumb, render_html
from memocli.score import ScoredFile

NOT_UTF8 = os.fsdecode(b"\xff\xfe.jpg")  # how Python sees a file name that is not UTF-8


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal, so the Rich table is drawn."""

    def isatty(self) -> bool:
        return True


def ranked_one(path: str, camera: str | None = None, raw: float = 0.5) -> list[Ranked]:
    item = ScoredFile(path, path, "ab" * 32, raw, ImageMeta(10, 10, None, camera))
    return [Ranked(1, 100.0, item, 1)]


def run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


# --- one function per format ---------------------------------------------------------------

def test_as_text_shows_the_bytes_of_a_name_that_is_not_utf8():
    assert escape.as_text(NOT_UTF8) == "\\xff\\xfe.jpg"
    assert escape.as_text(b"caf\xc3\xa9 \xff") == "café \\xff"
    assert escape.as_text("\ud800 lone") == "\\ud800 lone"  # not from surrogateescape


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "＝1+1",
                                  "=HYPERLINK(\"http://evil\",\"click\")"])
def test_csv_cells_that_spreadsheets_would_run_get_a_quote(cell):
    assert escape.for_csv(cell) == "'" + cell


def test_csv_numbers_and_plain_text_stay_as_they_are():
    assert escape.for_csv(-0.25) == -0.25  # a number, not a formula
    assert escape.for_csv("photo.jpg") == "photo.jpg"
    assert escape.for_csv(None) == ""
    assert escape.for_csv(float("inf")) == ""


def test_json_has_finite_numbers_and_text_only():
    text = escape.dumps_json({"a": float("inf"), "b": float("nan"), "c": b"\xff\x00",
                              "d": NOT_UTF8, "e": "csi\x9b31m"})
    assert json.loads(text) == {"a": None, "b": None, "c": "\\xff\x00", "d": "\\xff\\xfe.jpg",
                                "e": "csi\x9b31m"}
    assert "\x9b" not in text  # C1 control written as \u009b, still the same JSON string


def test_terminal_text_escapes_every_control_character():
    assert escape.for_terminal("\x1b[2J\x1b[31mRED\n") == "\\x1b[2J\\x1b[31mRED\\n"
    assert escape.for_terminal("\u202eevil") == "\\u202eevil"
    assert escape.terminal_message("line one\x1b\nline two") == "line one\\x1b\nline two"


# --- the writers ----------------------------------------------------------------------------

HOSTILE_CAMERA = "[/bold] closing \x1b[2J\x1b[31mRED [link=http://evil]x[/link]"


def test_rich_table_cells_are_text_never_markup(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell wraps
    out = FakeTerminal()
    print_table(ranked_one("[link=http://evil]click[/link] [bold]b[/bold].jpg", HOSTILE_CAMERA),
                "m", 1, out)
    text = out.getvalue()
    assert "\x1b]8;" not in text  # no terminal hyperlink
    assert "\x1b[2J" not in text and "\x1b[31m" not in text
    assert "[link=http://evil]click[/link] [bold]b[/bold].jpg" in text
    assert "[/bold] closing \\x1b[2J\\x1b[31mRED [link=http://evil]x[/link]" in text


def test_the_boxed_table_caption_is_the_legend_on_lines_of_its_own(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    out = FakeTerminal()
    print_table(ranked_one("a.jpg"), "m\nx", 1, out)
    lines = [line.strip() for line in out.getvalue().splitlines()]
    assert "\\n" not in out.getvalue().replace("m\\nx", "")  # only the model id's is escaped
    assert lines[-2:] == list(LEGEND_LINES) and lines[-3].endswith("model m\\nx")
    narrow = FakeTerminal()
    monkeypatch.setenv("COLUMNS", "60")
    print_table(ranked_one("a.jpg"), "m", 1, narrow)
    assert " ".join(LEGEND_LINES[0].split()) in " ".join(narrow.getvalue().split())


def test_plain_table_escapes_control_characters_in_every_cell():
    out = io.StringIO()
    print_table(ranked_one("a\x1b[2Jb.jpg", "\x1b[31mRED"), "m", 1, out)
    assert "\x1b" not in out.getvalue()
    assert "a\\x1b[2Jb.jpg" in out.getvalue() and "\\x1b[31mRED" in out.getvalue()


def test_csv_output_applies_the_formula_rule_to_every_text_cell():
    out = io.StringIO()
    write_csv(ranked_one("=HYPERLINK(\"http://evil\").jpg", "@SUM(1+1)", raw=-0.5), "m", out)
    row = list(csv.DictReader(io.StringIO(out.getvalue())))[0]
    assert row["path"] == "'=HYPERLINK(\"http://evil\").jpg"
    assert row["camera"] == "'@SUM(1+1)"
    assert row["raw_score"] == "-0.5"


def test_json_output_of_hostile_values_is_valid_json():
    out = io.StringIO()
    write_json(ranked_one(NOT_UTF8, "\x1b[31m"), "m", out)
    row = json.loads(out.getvalue())[0]
    assert row["path"] == "\\xff\\xfe.jpg" and row["camera"] == "\x1b[31m"


def test_html_report_escapes_names_and_exif():
    page = render_html(ranked_one("<script>alert(1)</script>\".jpg",
                                  "<img src=x onerror=alert(2)>"),
                       [Thumb(error="<b>bad</b>")], "<m>", "<title>")
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bad" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;.jpg" in page
    assert "<title>&lt;title&gt;</title>" in page


# --- through the commands -------------------------------------------------------------------

def hostile_library(lib: Path) -> None:
    write_photo(lib / NOT_UTF8)
    write_photo(lib / "=cmd.jpg", color=(10, 200, 10))
    exif = Image.Exif()
    exif[0x010F] = "[/bold] closing"  # Make
    exif[0x0110] = "\x1b[2J\x1b[31mRED"  # Model
    write_photo(lib / "[link=http:x]y[/link].jpg", color=(200, 10, 10), exif=exif)


@pytest.mark.parametrize("no_cache", [False, True])
def test_a_name_that_is_not_utf8_is_scored_in_every_format(tmp_path, tiny_checkpoint,
                                                           monkeypatch, no_cache):
    hostile_library(tmp_path / "lib")
    monkeypatch.chdir(tmp_path / "lib")
    cache = ["--no-cache"] if no_cache else ["--cache", str(tmp_path / "c.db")]
    common = [".", "-w", str(tiny_checkpoint), "--workers", "0", "-s", *cache]
    for _ in range(2):  # the second run answers from the cache
        rows = json.loads(run("score", "--json", *common).stdout)
        assert sorted(r["path"] for r in rows) == ["=cmd.jpg", "[link=http:x]y[/link].jpg",
                                                   "\\xff\\xfe.jpg"]
    assert "'=cmd.jpg" in run("score", "--csv", *common).stdout
    table = run("score", *common)
    assert table.exit_code == 0
    assert "\\xff\\xfe.jpg" in table.stdout and "\x1b" not in table.stdout
    assert "[/bold] closing" in table.stdout
    export = run("export", *common, str(tmp_path / "out.csv"))
    assert export.exit_code == 0
    assert "\\xff\\xfe.jpg" in (tmp_path / "out.csv").read_text(encoding="utf-8")


def test_exif_text_is_stored_without_control_characters(tmp_path, tiny_checkpoint):
    hostile_library(tmp_path / "lib")
    db = tmp_path / "c.db"
    run("score", str(tmp_path / "lib"), "-w", str(tiny_checkpoint), "--cache", str(db), "-s")
    with Cache(db) as cache:
        cameras = [r[0] for r in cache.db.execute("SELECT camera FROM images")
                   if r[0] is not None]
    assert cameras == ["[/bold] closing [2J [31mRED"]


def test_error_messages_escape_the_file_names_in_them(tmp_path):
    weights = tmp_path / "\x1b[31mevil.pt"
    weights.write_bytes(b"not a checkpoint")
    write_photo(tmp_path / "lib" / "a.jpg")
    result = run("score", str(tmp_path / "lib"), "-w", str(weights), "--no-cache")
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr and "\\x1b[31mevil.pt" in result.stderr


def test_csv_cells_with_a_carriage_return_read_back_whole():
    out = io.StringIO()
    write_csv(ranked_one("a\rb.jpg", "c\r\nd"), "m", out)
    row = list(csv.DictReader(io.StringIO(out.getvalue())))[0]
    assert row["path"] == "a\rb.jpg" and row["camera"] == "c\r\nd"
