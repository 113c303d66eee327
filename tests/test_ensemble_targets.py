"""scripts/ensemble_targets.py: several teachers' z-scores averaged into one split file."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ensemble_targets.py"


def test_targets_average_each_teachers_standardised_scores(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        (folder / name).write_bytes(b"")
    export = tmp_path / "r50.csv"  # a memo export: raw_score counts, not score
    export.write_text("rank,path,score,raw_score\n"
                      f"1,{folder}/a.jpg,1.0,1.3\n2,{folder}/b.jpg,0.5,0.5\n"
                      f"3,{folder}/c.jpg,0.4,0.4\n4,{folder}/d.jpg,0.1,0.1\n")
    first, rest = tmp_path / "t1.txt", tmp_path / "t2.txt"  # one teacher in two files
    first.write_text("a.jpg 0.9\nb.jpg 0.7\n")
    rest.write_text("c.jpg 0.8\nother.jpg 0.1\n")  # d.jpg unscored: no target
    out = tmp_path / "splits" / "ensemble.txt"
    subprocess.run([sys.executable, str(SCRIPT), str(folder), str(out), str(export),
                    f"{first}+{rest}"], check=True, capture_output=True)
    got = {line.split()[0]: float(line.split()[1]) for line in out.read_text().splitlines()}
    assert sorted(got) == ["a.jpg", "b.jpg", "c.jpg"]
    z1 = {"a.jpg": 1.3, "b.jpg": 0.5, "c.jpg": 0.4}  # z over the three photos, by hand
    z2 = {"a.jpg": 0.9, "b.jpg": 0.7, "c.jpg": 0.8}
    for name, target in got.items():
        expected = []
        for z in (z1, z2):
            values = list(z.values())
            mean = sum(values) / 3
            sd = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
            expected.append((z[name] - mean) / sd)
        assert target == pytest.approx(0.6 + 0.1 * sum(expected) / 2, abs=1e-6)
