"""What a person reads around the scores: the legend, percentiles, progress in a log, -v."""

import logging

import pytest
from conftest import invoke

from memocli.cache import ImageMeta
from memocli.cli import progress
from memocli.escape import for_html
from memocli.ranking import LEGEND_LINES, rank, shown_percentile
from memocli.score import ScoredFile


@pytest.mark.parametrize(("pct", "decimals", "shown"), [
    (100.0, 0, 100), (99.51, 0, 99), (99.96, 1, 99.9), (99.996, 2, 99.99), (50.04, 1, 50.0),
    (0.0, 0, 0), (0.6, 0, 1)])
def test_percentiles_round_to_100_only_for_the_top(pct, decimals, shown):
    assert shown_percentile(pct, decimals) == shown


def test_in_a_large_set_only_the_best_photo_shows_100():
    files = [ScoredFile(f"{i}.jpg", f"/{i}.jpg", str(i), i / 1000, ImageMeta())
             for i in range(1001)]
    shown = [shown_percentile(r.percentile, 0) for r in rank(files)]
    assert shown[:3] == [100, 99, 99] and shown[-1] == 0


def test_the_legend_is_under_the_table_in_help_and_in_the_report(tmp_path, make_photos,
                                                                 tiny_checkpoint):
    photos = make_photos(3)
    common = ["-w", str(tiny_checkpoint), "--cache", str(tmp_path / "c.db"), "-s"]
    table = invoke(["score", str(photos[0].parent), *common]).stdout.splitlines()
    assert table[-2:] == list(LEGEND_LINES) and "of 3 photo(s)" in table[-3]
    assert "share of people expected to recognise the photo on a second viewing" in \
        " ".join(invoke(["score", "--help"]).stdout.split())
    out = tmp_path / "report.html"
    invoke(["report", str(photos[0].parent), "--out", str(out), "--heatmaps", "0", *common])
    assert for_html(" ".join(LEGEND_LINES)) in out.read_text()


def test_progress_in_a_log_is_plain_lines_now_and_then(tmp_path, make_photos,
                                                       tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # a line at every step
    photos = make_photos(5)
    (photos[0].parent / "broken.jpg").write_bytes(b"not a jpeg")
    result = invoke(["score", str(photos[0].parent), "-w", str(tiny_checkpoint), "--no-cache",
                     "--batch-size", "2", "--workers", "0"], code=1)
    assert "\r" not in result.stderr and "%|" not in result.stderr
    lines = result.stderr.splitlines()
    assert "scoring: 6/6 files" in lines and "hashing: 6/6 files" in lines
    assert any(line.startswith("skipped ") and line.endswith("broken.jpg: not a recognised "
                                                             "image format") for line in lines)


def test_verbose_tells_memos_facts_not_pils(tmp_path, make_photos, tiny_checkpoint, caplog):
    photos = make_photos(2)
    (photos[0].parent / "clip.mov").write_bytes(b"video")
    try:
        invoke(["-v", "score", str(photos[0].parent), "-w", str(tiny_checkpoint),
                "--cache", str(tmp_path / "c.db"), "-s"])
        assert logging.getLogger("PIL").getEffectiveLevel() > logging.DEBUG
    finally:
        logging.getLogger("memocli").setLevel(logging.NOTSET)
    said = caplog.text
    assert "model on cpu in " in said and "batches of 16" in said
    assert f"cache {tmp_path / 'c.db'}" in said and "model vnet_tiny-" in said
    assert "passed over: {'video': 1}" in said and "not a photo (video): " in said
    assert not [r for r in caplog.records if not r.name.startswith("memocli")]
