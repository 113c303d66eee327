"""Every scoring command end to end on the default engine (the suite's other tests set
MEMO_ENGINE=torch): `auto` is OpenVINO on this CPU, and its scores agree with float32
torch within the precision budget (0.01, docs/scoring.md)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import invoke

from memocli import engines

pytestmark = pytest.mark.skipif(not engines.openvino_installed(),
                                reason="OpenVINO is not installed")

BUDGET = 0.01


@pytest.fixture
def default_engine(monkeypatch):
    monkeypatch.delenv("MEMO_ENGINE")


def torch_scores(folder, checkpoint, tmp_path) -> dict[str, float]:
    out = invoke(["score", str(folder), "-w", str(checkpoint), "--engine", "torch",
                  "--precision", "fp32", "--cache", str(tmp_path / "torch.db"), "--json"])
    return {r["path"]: r["raw_score"] for r in json.loads(out.stdout)}


def test_score(default_engine, make_photos, tiny_checkpoint, tmp_path):
    folder = make_photos(4)[0].parent
    rows = json.loads(invoke(["score", str(folder), "-w", str(tiny_checkpoint),
                              "--json"]).stdout)
    assert all("-ov" in r["model_id"] for r in rows)
    expected = torch_scores(folder, tiny_checkpoint, tmp_path)
    for r in rows:
        assert r["raw_score"] == pytest.approx(expected[r["path"]], abs=BUDGET)


def test_export(default_engine, make_photos, tiny_checkpoint, tmp_path):
    folder = make_photos(4)[0].parent
    out = tmp_path / "ranks.csv"
    invoke(["export", str(folder), str(out), "-w", str(tiny_checkpoint), "-s"])
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 4 and all("-ov" in r["model_id"] for r in rows)
    expected = torch_scores(folder, tiny_checkpoint, tmp_path)
    for r in rows:
        assert float(r["raw_score"]) == pytest.approx(expected[r["path"]], abs=BUDGET)


def test_report(default_engine, make_photos, tiny_checkpoint, tmp_path):
    folder = make_photos(4)[0].parent
    out = tmp_path / "report.html"
    result = invoke(["report", str(folder), "-w", str(tiny_checkpoint), "--heatmaps", "2",
                     "--out", str(out)])
    assert "4 photo(s), 2 heatmap(s)" in result.stderr
    assert "-ov" in out.read_text(encoding="utf-8")


def test_evaluate(default_engine, make_photos, tiny_checkpoint, tmp_path):
    photos = make_photos(6, folder="lamem/images")
    splits = tmp_path / "lamem" / "splits"
    splits.mkdir()
    (splits / "test_1.txt").write_text(
        "".join(f"{p.name} {0.5 + i / 20}\n" for i, p in enumerate(photos)), encoding="utf-8")
    default = json.loads(invoke(["evaluate", str(tmp_path / "lamem"), "-w",
                                 str(tiny_checkpoint), "--json"]).stdout)
    reference = json.loads(invoke(["evaluate", str(tmp_path / "lamem"), "-w",
                                   str(tiny_checkpoint), "--engine", "torch",
                                   "--json"]).stdout)
    assert default["model"].endswith(f"-ov{engines.openvino_version()}")
    assert default["n"] == reference["n"] == 6
    assert default["mse"] == pytest.approx(reference["mse"], abs=1e-4)
