"""scripts/teacher_scores.py's resume logic (ResMem itself is not needed)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from memocli.predictor import Predictor

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "teacher_scores.py"


def load_script():
    spec = importlib.util.spec_from_file_location("teacher_scores", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resume_keeps_whole_lines_and_drops_a_cut_off_one(tmp_path):
    out = tmp_path / "teacher.txt"
    out.write_text("a.jpg 0.700000\nb.jpg 0.650000\nc.jp", encoding="utf-8")
    assert load_script().done_names(out) == {"a.jpg", "b.jpg"}
    assert out.read_text(encoding="utf-8") == "a.jpg 0.700000\nb.jpg 0.650000\n"


def test_nothing_done_without_a_file(tmp_path):
    assert load_script().done_names(tmp_path / "missing.txt") == set()


def test_a_memo_teacher_scores_the_named_photos_and_keeps_the_held_out_fifth_apart(
        tiny_checkpoint, make_photos, tmp_path):
    photos = make_photos(10)
    listed = tmp_path / "train.txt"
    listed.write_text("".join(f"{p.name} 0.5\n" for p in photos[:8]))
    out = tmp_path / "splits" / "teacher.txt"
    out.parent.mkdir()
    script = load_script()
    argv = [str(SCRIPT), str(photos[0].parent), str(out), "--teacher", str(tiny_checkpoint),
            "--names", str(listed), "--held-out", "0", "--batch-size", "3"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        script.main()
        written = {**dict(line.split() for line in out.read_text().splitlines()),
                   **dict(line.split() for line in (out.parent / "teacher_heldout.txt")
                          .read_text().splitlines())}
        assert sorted(written) == sorted(p.name for p in photos[:8])  # the named ones only
        held = (out.parent / "teacher_heldout.txt").read_text().split()[::2]
        assert held and all(script.fifth(n) == 0 for n in held)
        assert all(script.fifth(line.split()[0]) != 0 for line in out.read_text().splitlines())
        before = out.read_text()
        script.main()  # resumed: nothing left to do, nothing written twice
        assert out.read_text() == before

    scores = dict(line.split() for line in out.read_text().splitlines())
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu", "fp32", "auto")
    name = next(iter(scores))
    for batch in predictor.iter_predictions([photos[0].parent / name]):
        assert float(scores[name]) == pytest.approx(batch.scores[0], abs=1e-5)
