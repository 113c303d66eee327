"""``memo evaluate``: the predictions are memo score's raw scores of the same photos, the
metrics are computed from them, and --csv follows memo's output policy."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import invoke, write_photo

from memocli.data import load_split
from memocli.errors import MemoError
from memocli.evaluation import evaluate_split
from memocli.predictor import Predictor


def spearman(a, b) -> float:
    """Spearman's rho of two sequences without ties: the correlation of their ranks."""
    ranks = [np.argsort(np.argsort(x)) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


@pytest.fixture
def labelled(tmp_path):
    """A CSV manifest of 6 photos of rising brightness with made-up labels."""
    folder = tmp_path / "data"
    labels = [0.2, 0.5, 0.3, 0.9, 0.7, 0.4]
    for i in range(6):
        write_photo(folder / "images" / f"p{i}.png", color=(30 * i, 200 - 25 * i, 90))
    manifest = folder / "labels.csv"
    manifest.write_text("path,score,split\n" + "".join(
        f"images/p{i}.png,{label},test\n" for i, label in enumerate(labels)))
    return manifest, labels


def test_evaluate_predicts_as_memo_score_and_writes_its_csv(tmp_path, labelled,
                                                            tiny_checkpoint):
    manifest, labels = labelled
    preds = tmp_path / "out" / "preds.csv"  # a missing folder is created, as for every output
    result = invoke(["evaluate", str(manifest), "--split", "test", "-w", str(tiny_checkpoint),
                     "--csv", str(preds), "--json", "--workers", "0"])
    summary = json.loads(result.stdout)
    rows = list(csv.DictReader(preds.read_text().splitlines()))
    assert [float(r["target"]) for r in rows] == labels
    scored = json.loads(invoke(["score", str(manifest.parent / "images"), "--json", "-w",
                                str(tiny_checkpoint), "--precision", "fp32", "--no-cache",
                                "-s"]).stdout)
    raw = {row["path"]: row["raw_score"] for row in scored}
    assert [float(r["prediction"]) for r in rows] == pytest.approx(
        [raw[r["path"]] for r in rows], abs=1e-6)
    predictions = [float(r["prediction"]) for r in rows]
    assert summary["n"] == 6
    assert summary["rho"] == pytest.approx(spearman(predictions, labels), abs=1e-6)
    assert summary["split"] == "test" and summary["model"].endswith("-fp32")


def test_evaluate_refuses_a_csv_it_could_not_write_before_predicting(tmp_path, labelled,
                                                                    tiny_checkpoint):
    manifest, _ = labelled
    result = invoke(["evaluate", str(manifest), "--split", "test", "-w", str(tiny_checkpoint),
                     "--csv", str(manifest / "preds.csv")], code=1)
    assert result.stderr == (f"Error: {manifest}/preds.csv: {manifest} is a file, not a "
                             "folder\n")


def test_an_undecodable_photo_stops_the_evaluation(tmp_path, labelled, tiny_checkpoint):
    manifest, _ = labelled
    items = load_split(manifest, "test")
    (manifest.parent / "images" / "p3.png").write_bytes(b"not a png")  # broken since checked
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu", "fp32", "torch")
    with pytest.raises(MemoError, match="p3.png: "):
        evaluate_split(predictor, items, "test", workers=0)


def test_progress_counts_every_photo_and_silent_prints_nothing(tmp_path, labelled,
                                                              tiny_checkpoint):
    from memocli.reporting import Progress

    manifest, _ = labelled
    stages = []

    class Recorder:
        def __init__(self, total, desc, unit):
            self.stage = {"total": total, "desc": desc, "done": 0}
            stages.append(self.stage)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, n):
            self.stage["done"] += n

    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu", "fp32", "torch")
    evaluate_split(predictor, load_split(manifest, "test"), "test", batch_size=4, workers=0,
                   progress=Progress(bar=Recorder))
    assert stages == [{"total": 6, "desc": "evaluating test", "done": 6}]
    result = invoke(["evaluate", str(manifest), "--split", "test", "-w", str(tiny_checkpoint),
                     "--workers", "0", "-s"])
    assert result.stderr == "" and result.stdout.startswith("test: rho ")
