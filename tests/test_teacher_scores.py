"""scripts/teacher_scores.py's resume logic (ResMem itself is not needed)."""

import importlib.util
from pathlib import Path

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
