"""Decode memory, warnings about a photo, and percentiles of tied scores."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from conftest import write_photo
from PIL import Image

from memocli import decode
from memocli.cache import ImageMeta
from memocli.cli import cli
from memocli.pixel_budget import PixelBudget
from memocli.ranking import rank
from memocli.score import ScoredFile

# --- ties --------------------------------------------------------------------------------


def scored(name: str, raw: float) -> ScoredFile:
    return ScoredFile(name, "/" + name, "h" + name, raw, ImageMeta())


def test_tied_scores_share_the_mid_rank_percentile():
    files = [scored(n, s) for n, s in (("a", 0.5), ("b", 0.5), ("c", 0.5), ("d", 0.9),
                                       ("e", 0.1))]
    pct = {r.item.path: r.percentile for r in rank(files)}
    assert pct == {"d": 100.0, "e": 0.0, "a": 50.0, "b": 50.0, "c": 50.0}
    assert {r.percentile for r in rank([scored(n, 0.3) for n in "xyz"])} == {50.0}
    assert [r.percentile for r in rank([scored("one", 0.3)])] == [100.0]
    pct = {r.item.path: r.percentile for r in rank([scored(n, s) for n, s in
                                                    (("p", 0.2), ("q", 0.2), ("r", 0.8))])}
    assert pct == {"r": 100.0, "p": 25.0, "q": 25.0}


# --- the pixel budget --------------------------------------------------------------------

def most_at_once(monkeypatch, budget: PixelBudget, paths) -> int:
    """How many images were being decoded at the same moment, at most."""
    monkeypatch.setattr(decode, "DECODE_BUDGET", budget)
    real, now, peak, lock = decode._upright_rgb, [0], [0], threading.Lock()

    def decoding(img):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05)
        try:
            return real(img)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(decode, "_upright_rgb", decoding)
    with ThreadPoolExecutor(4) as pool:
        images = list(pool.map(decode.load_image, paths))
    assert [im.size for im in images] == [(64, 64)] * len(paths)
    return peak[0]


def test_threads_decode_only_as_many_pixels_at_once_as_the_budget_allows(tmp_path,
                                                                       monkeypatch):
    paths = [write_photo(tmp_path / f"{i}.png", size=(64, 64)) for i in range(8)]
    assert most_at_once(monkeypatch, PixelBudget(64 * 64 * 2), paths) == 2
    assert most_at_once(monkeypatch, PixelBudget(64 * 64 - 1), paths) == 1  # larger: alone
    assert most_at_once(monkeypatch, PixelBudget(10**9), paths) >= 3


def test_the_budget_is_given_back_when_a_decode_fails(tmp_path, monkeypatch):
    budget = PixelBudget(64 * 64)
    monkeypatch.setattr(decode, "DECODE_BUDGET", budget)
    whole = write_photo(tmp_path / "whole.jpg", size=(64, 64), quality=90)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(OSError):
        decode.load_image(broken)
    assert budget.in_use == 0
    decode.load_image(whole)


# --- warnings about a photo ----------------------------------------------------------------

def photo_with_broken_exif(path):
    exif = Image.Exif()
    exif[0x010F] = "Maker name long enough"
    exif[0x0110] = "A long camera model name here"
    Image.new("RGB", (40, 30), (100, 50, 20)).save(path, exif=exif.tobytes()[:-20])
    return path


def test_a_pillow_warning_names_the_photo_not_pillows_source(tmp_path, tiny_checkpoint,
                                                             caplog, recwarn):
    lib = tmp_path / "lib"
    bad = photo_with_broken_exif(lib.mkdir() or lib / "bad-exif.jpg")
    write_photo(lib / "fine.jpg")
    with caplog.at_level(logging.WARNING, logger="memocli.photo_warnings"):
        result = CliRunner().invoke(cli, ["score", str(lib), "--json", "-w",
                                          str(tiny_checkpoint), "--no-cache", "--workers",
                                          "0", "-s"], catch_exceptions=False)
    assert result.exit_code == 0
    said = [r.getMessage() for r in caplog.records if r.name == "memocli.photo_warnings"]
    assert said and all(m.startswith(f"{bad}: ") for m in said)
    assert len(said) == len(set(said))  # once per photo and message
    assert "site-packages" not in result.output
    leaked = [w for w in recwarn if "EXIF" in str(w.message) or "Truncated" in str(w.message)]
    assert not leaked, [(w.filename, w.lineno, str(w.message)) for w in leaked]
