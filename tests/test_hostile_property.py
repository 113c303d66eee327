"""Property test: generated hostile strings as file names and EXIF fields, through every output.

A seeded generator (reproducible, no extra dependency) combines control characters,
terminal escape sequences, Rich markup, spreadsheet formula prefixes, HTML, bytes that are
not UTF-8 and very long runs into file names and EXIF camera fields. The library goes
through ``memo score`` (plain table, Rich table, CSV, JSON), ``memo export`` (CSV, JSON)
and ``memo report``. Every run must finish, and every output must hold the text escaped
the way :mod:`memocli.escape` promises for its format.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path

import click.testing
import pytest
from click.testing import CliRunner
from conftest import write_photo
from PIL import Image

from memocli import escape
from memocli.cli import cli

SEEDS = (14, 1414)
NAME_PIECES = {
    "control": ["\x1b[2J", "\x1b[31m", "\x1b]8;;http://evil\x1b\\", "\x07", "\r", "\t", "\n",
                "\x9b31m", "\u202e", "\x7f", "\x08"],
    "markup": ["[bold]", "[/bold]", "[/]", "[link=http://evil.example]x[/link]", "[red",
               "[blink]"],
    "formula": ["=", "+", "-", "@", '=HYPERLINK("http://evil","x")', "=1+1", "@SUM(A1)"],
    "not_utf8": ["\udcff", "\udcfe\udc80", "caf\udce9"],
    "html": ["<script>alert(1)</script>", "\"'&", "<img src=x onerror=alert(1)>"],
    "long": ["x" * 120, "é" * 60],
}
# EXIF ASCII fields: no surrogates, nothing outside Latin-1.
EXIF_PIECES = {k: [p for p in v if p.isascii()] for k, v in NAME_PIECES.items()
               if k != "not_utf8"}


def hostile(rng: random.Random, pieces: dict[str, list[str]], must: str | None = None) -> str:
    """2-4 pieces, one of category ``must`` if given, a formula piece first half the time."""
    kinds = rng.sample(sorted(pieces), rng.randint(2, 4))
    if must and must not in kinds:
        kinds[0] = must
    chosen = [rng.choice(pieces[k]) for k in kinds]
    if rng.random() < 0.5:
        chosen.insert(0, rng.choice(pieces["formula"]))
    return "".join(chosen)


def file_name(text: str, index: int) -> str:
    """``text`` as a legal file name of at most 200 bytes, unique by ``index``."""
    text = text.replace("/", "|").replace("\x00", "")
    while len(os.fsencode(text)) > 190:
        text = text[:-1]
    return f"{text}{index}.jpg"


def hostile_library(root: Path, seed: int) -> tuple[list[str], list[str], str]:
    """Photos with generated names and EXIF; returns (names, cameras, broken file's name)."""
    rng = random.Random(seed)
    names, cameras = [], []
    for i, kind in enumerate(sorted(NAME_PIECES) * 2):
        name = file_name(hostile(rng, NAME_PIECES, kind), i)
        exif = Image.Exif()
        make = hostile(rng, EXIF_PIECES, "control" if i % 2 else "markup")
        exif[0x010F] = make[:200]
        exif[0x0110] = hostile(rng, EXIF_PIECES, "formula")[:200]
        write_photo(root / name, color=(rng.randrange(256), 80, 160), exif=exif)
        names.append(name)
        cameras.append(make)
    broken = file_name(hostile(rng, NAME_PIECES, "control"), 99)
    (root / broken).write_text("not a photo")
    return names, cameras, broken


def is_terminal_safe(text: str) -> bool:
    """No character a terminal would obey, besides line ends."""
    return all(c.isprintable() or c == "\n" for c in text)


SKIPPED = "Error: 1 file(s) skipped (reasons above); the others were scored"
REMEMBERED = ("Error: 1 file(s) could not be read in an earlier run (named above; "
              "--accept-known-failures exits 0)")


def run(args: list[str], last_line: str = REMEMBERED):
    """Run memo; the broken file is skipped by the first run and remembered by the later
    ones (named again, without loading the model)."""
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output  # the run finished; one file was skipped
    assert result.stderr.strip().splitlines()[-1] == last_line
    assert is_terminal_safe(result.stderr)
    return result


def check_csv(text: str, names: list[str]) -> None:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["path"] for r in rows) == sorted(escape.for_csv(n) for n in names)
    for row in rows:
        for key, cell in row.items():
            assert cell[:1] not in escape.FORMULA_STARTS, (key, cell)


def check_json(text: str, names: list[str]) -> None:
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    rows = json.loads(text, parse_constant=refuse)
    assert sorted(r["path"] for r in rows) == sorted(escape.as_text(n) for n in names)
    assert all(isinstance(r["camera"], (str, type(None))) for r in rows)
    assert is_terminal_safe(text)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_names_and_exif_are_escaped_in_every_output(tmp_path, tiny_checkpoint,
                                                           monkeypatch, seed):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "3000")  # the Rich table wraps no cell
    lib = Path("lib")
    lib.mkdir()
    names, cameras, broken = hostile_library(lib, seed)
    names = [f"lib/{n}" for n in names]
    common = ["-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db"), "--workers",
              "0", "-s"]

    plain = run(["score", "lib", *common], SKIPPED)
    assert is_terminal_safe(plain.stdout) and is_terminal_safe(plain.stderr)
    assert escape.for_terminal(f"lib/{broken}") in plain.stderr
    for name in names:
        assert escape.for_terminal(name) in plain.stdout

    with monkeypatch.context() as terminal:  # undoes this patch only, not the isolation
        terminal.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda self: True,
                         raising=False)
        rich_run = run(["score", "lib", *common])
    assert escape.for_terminal(f"lib/{broken}") in rich_run.stderr  # the remembered failure
    rich = rich_run.stdout
    assert "\x1b]8;" not in rich and "\x07" not in rich and "\x1b[2J" not in rich
    assert "\x9b" not in rich and "\u202e" not in rich and "\r" not in rich
    assert all(c.isprintable() or c in "\n\x1b" for c in rich)  # \x1b: Rich's own styles
    for name in names:
        assert escape.for_terminal(name) in rich, name
    for camera in cameras:
        assert "[link=" not in camera or "[link=" in rich  # markup shown, not obeyed

    check_csv(run(["score", "lib", "--csv", *common]).stdout, names)
    check_json(run(["score", "lib", "--json", *common]).stdout, names)
    run(["export", "lib", "out.csv", *common])
    with open("out.csv", newline="", encoding="utf-8") as f:  # keep a \r inside a cell
        check_csv(f.read(), names)
    run(["export", "lib", "out.json", *common])
    check_json(Path("out.json").read_text(encoding="utf-8"), names)

    run(["report", "lib", "--out", "report.html", "--heatmaps", "0", *common])
    page = Path("report.html").read_text(encoding="utf-8")
    assert page.count("<script") == 1  # the page's own
    assert "<img src=x" not in page and "onerror=alert" not in page.replace(
        "onerror=alert(1)&gt;", "")
    assert is_terminal_safe(page)
    for name in names:
        assert escape.for_html(Path(name).name) in page
