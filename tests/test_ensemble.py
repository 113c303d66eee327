"""Ensembles (memo fit-ensemble, --weights MANIFEST or a name): members referenced by digest,
scores the z-scored mean of the members', scored and cached like any model."""

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import invoke, tiny_checkpoint_at
from test_train import brightness_dataset

from memocli.ensemble import EnsemblePredictor, mirror_average
from memocli.predictor import Predictor

TORCH_FP32 = ["--precision", "fp32", "--engine", "torch", "--workers", "0", "-s"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return brightness_dataset(tmp_path_factory.mktemp("scenes") / "ds", n_train=24, n_val=8,
                              n_test=8)


@pytest.fixture
def members(isolated_memo_home):
    """Two tiny checkpoints in the user's model folder (and a third, unused)."""
    folder = isolated_memo_home / "weights"
    return [tiny_checkpoint_at(folder / f"m{seed}.pt", seed=seed) for seed in (0, 1, 2)]


def member_scores(checkpoint, paths):
    """A member's raw scores of ``paths``, computed by its own float32 Predictor."""
    predictor = Predictor.from_checkpoint(checkpoint, "cpu", "fp32", "torch")
    scores = {}
    for batch in predictor.iter_predictions(paths, workers=0):
        scores.update(zip(batch.indices, batch.scores))
    return np.array([scores[i] for i in range(len(paths))])


def fit(members, scenes, out, split="train_1"):
    return invoke(["fit-ensemble", *map(str, members), "--scene", str(scenes), "--split",
                   split, "--out", str(out), *TORCH_FP32])


def test_scores_are_the_z_scored_mean_of_the_members(members, scenes, tmp_path):
    manifest = members[0].parent / "memo-accurate.json"
    fit(members[:2], scenes, manifest)
    written = json.loads(manifest.read_text())
    assert [m["weights"] for m in written["members"]] == ["m0.pt", "m1.pt"]  # by the folder

    train = [scenes / "images" / line.split()[0]
             for line in (scenes / "splits" / "train_1.txt").read_text().splitlines()]
    labels = [float(line.split()[1])
              for line in (scenes / "splits" / "train_1.txt").read_text().splitlines()]
    own = [member_scores(m, train) for m in members[:2]]
    z = np.mean([(s - s.mean()) / s.std() for s in own], axis=0)
    slope, intercept = np.polyfit(z, labels, 1)
    for m, s in zip(written["members"], own):
        assert (m["mean"], m["std"]) == pytest.approx((s.mean(), s.std()), rel=1e-5)
    assert written["scale"]["slope"] == pytest.approx(slope, rel=1e-5)
    assert written["scale"]["intercept"] == pytest.approx(intercept, rel=1e-5)

    photos = scenes / "images"
    out = tmp_path / "scores.csv"
    invoke(["export", str(photos), str(out), "--weights", "accurate", *TORCH_FP32])
    with open(out, newline="") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    paths = sorted(photos.iterdir())
    each = [member_scores(m, paths) for m in members[:2]]
    expected = intercept + slope * np.mean(
        [(s - m["mean"]) / m["std"] for s, m in zip(each, written["members"])], axis=0)
    got = [float(next(r for p, r in rows.items() if p.endswith(path.name))["raw_score"])
           for path in paths]
    assert got == pytest.approx(expected.tolist(), abs=1e-5)
    assert next(iter(rows.values()))["model_id"].startswith("ensemble-")

    again = invoke(["score", str(photos), "--weights", "accurate", *TORCH_FP32[:-1]])
    assert f"{len(paths)} from the cache, 0 scored now" in again.stderr


def test_the_model_id_changes_with_any_member(members, scenes, tmp_path):
    fit(members[:2], scenes, tmp_path / "a.json")
    fit([members[0], members[2]], scenes, tmp_path / "b.json")
    ids = {EnsemblePredictor.from_manifest(tmp_path / name, "cpu", "fp32", "torch").model_id
           for name in ("a.json", "b.json")}
    assert len(ids) == 2

    shutil.copy(members[2], members[1])  # the file a.json names is now other weights
    result = invoke(["score", str(scenes / "images"), "--weights", str(tmp_path / "a.json"),
                     *TORCH_FP32], 1)
    assert "m1.pt is not the checkpoint the ensemble was fitted with" in result.output


def test_evaluate_and_explain_take_an_ensemble(members, scenes, tmp_path):
    manifest = tmp_path / "e.json"
    fit(members[:2], scenes, manifest)
    result = invoke(["evaluate", str(scenes), "--split", "val_1", "--weights", str(manifest),
                     "--json", *TORCH_FP32[:-1]])
    assert json.loads(result.stdout)["model"].startswith("ensemble-")
    photo = sorted((scenes / "images").iterdir())[0]
    invoke(["explain", str(photo), "--weights", str(manifest), "--out", str(tmp_path / "maps")])
    assert list((tmp_path / "maps").iterdir())


def test_a_mirror_average_scores_a_photo_as_the_mean_of_it_and_its_mirror_image(members,
                                                                                tmp_path):
    from PIL import Image, ImageOps

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)  # lit from the left, so that its mirror image differs
    pixels = rng.integers(0, 60, (48, 64, 3)) + np.linspace(190, 0, 64)[None, :, None]
    Image.fromarray(pixels.astype(np.uint8)).save(photos / "left.png")
    ImageOps.mirror(Image.open(photos / "left.png")).save(photos / "right.png")
    paths = [photos / "left.png", photos / "right.png"]
    manifest = tmp_path / "stable.json"
    invoke(["mirror-average", str(members[0]), "--out", str(manifest)])
    assert manifest.read_text() == mirror_average(members[0], manifest).to_json()

    predictor = EnsemblePredictor.from_manifest(manifest, "cpu", "fp32", "torch")
    assert predictor.members[0] is predictor.members[1]  # one model, loaded once
    assert predictor.model_id != predictor.members[0].model_id

    out = tmp_path / "scores.csv"
    invoke(["export", str(photos), str(out), "--weights", str(manifest), *TORCH_FP32])
    with open(out, newline="") as f:
        got = {r["path"].rsplit("/", 1)[-1]: float(r["raw_score"]) for r in csv.DictReader(f)}
    own = member_scores(members[0], paths)
    assert abs(own[0] - own[1]) > 1e-3  # the model alone tells the two apart
    assert got["left.png"] == pytest.approx(own.mean(), abs=1e-5)
    assert got["right.png"] == pytest.approx(got["left.png"], abs=1e-5)


def test_mirror_average_refuses_what_it_cannot_average_in_one_line(members, scenes, tmp_path):
    manifest = tmp_path / "stable.json"
    invoke(["mirror-average", str(members[0]), "--out", str(manifest)])
    written = manifest.read_text()
    refused = {
        "is an ensemble manifest": [str(manifest), "--out", str(tmp_path / "m.json")],
        "ends in .json": [str(members[0]), "--out", str(tmp_path / "m.pt")],
        "exists": [str(members[1]), "--out", str(manifest)],
    }
    for reason, args in refused.items():
        result = invoke(["mirror-average", *args], 2)
        assert reason in result.output and "Traceback" not in result.output
    assert manifest.read_text() == written  # not replaced without --force
    photo = sorted((scenes / "images").iterdir())[0]
    result = invoke(["mirror-average", str(photo), "--out", str(tmp_path / "p.json")], 1)
    assert photo.name in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "p.json").exists()


def test_bad_manifests_are_one_line_errors(members, scenes, tmp_path):
    mirror = ('{"format": "memo-ensemble", "format_version": 1, "members": [{"weights": "r50", '
              f'"sha256": "{"0" * 64}", "mean": 0, "std": 1, "mirror": "yes"}}]}}')
    cases = {"not json": "{", "other format": '{"format": "x"}',
             "no members": '{"format": "memo-ensemble", "format_version": 1, "members": []}',
             "mirror not a flag": mirror}
    for text in cases.values():
        (tmp_path / "bad.json").write_text(text)
        result = invoke(["score", str(scenes / "images"), "--weights",
                         str(tmp_path / "bad.json"), "-s"], 1)
        assert "bad.json" in result.output and "Traceback" not in result.output
    invoke(["fit-ensemble", str(members[0]), "--scene", str(tmp_path), "--out",
            str(tmp_path / "x.pt")], 2)  # a manifest's name ends in .json
