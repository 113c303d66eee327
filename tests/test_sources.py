"""Training on several sources at once: one head per source, each with its own validation."""

import csv
import random

import pytest
import torch
from conftest import invoke
from PIL import Image
from test_train import brightness_dataset

from memocli.checkpoint import load_checkpoint
from memocli.errors import MemoError
from memocli.model import VNet
from memocli.registry import get_config
from memocli.sources import SourceSpec, holdout, load_sources, source_names
from memocli.train import start_at_means


def teacher_folder(root, n=80):
    """A LaMem-layout folder with one unsplit file, splits/teacher.txt, on another scale:
    score = 5 + 3 * darkness (the opposite order of the brightness dataset's, mean 6.5)."""
    rng = random.Random(1)
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    lines = []
    for i in range(n):
        level = rng.random()
        pixels = ((level * 0.7 + torch.rand(40, 40, 3) * 0.3) * 255).clamp(0, 255)
        Image.fromarray(pixels.to(torch.uint8).numpy()).save(root / "images" / f"t{i:03d}.jpg")
        lines.append(f"t{i:03d}.jpg {5 + 3 * (1 - level):.6f}")
    (root / "splits" / "teacher.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    return (brightness_dataset(root / "scenes", n_train=64, n_val=24, n_test=16),
            teacher_folder(root / "pool"))


@pytest.mark.slow
def test_each_head_learns_its_own_source_and_each_source_is_reported(two_sources, tmp_path):
    scenes, pool = two_sources
    out = tmp_path / "run"
    result = invoke(["train", str(scenes), "--data", f"{pool}:teacher:0.5", "--val-frac", "0.25",
                     "--model", "vnet_tiny", "--epochs", "10", "--lr-max", "3e-3",
                     "--batch-size", "16", "--workers", "0", "--out", str(out), "-s"])
    assert "scenes val rho" in result.stdout and "pool val rho" in result.stdout
    assert "scenes: val rho" in result.stderr and "pool: val rho" in result.stderr

    best = load_checkpoint(out / "best.pt")
    assert best.cfg.heads == ("scenes", "pool")
    metrics = best.meta["metrics"]
    assert metrics["val_n_scenes"] == 24 and metrics["val_n_pool"] == 20
    # opposite orders and scales: one output could not fit both, each head fits its own
    assert metrics["val_rho_scenes"] > 0.7 and metrics["val_rho_pool"] > 0.7
    assert metrics["val_mse_pool"] < 0.5 * 0.75  # well under the teacher scores' variance
    assert metrics["val_rho"] == metrics["val_rho_scenes"]  # the first source picks the epoch
    assert "test_rho_scenes" in metrics and "test_rho_pool" not in metrics
    assert [s["name"] for s in best.meta["train_data"]["sources"]] == ["scenes", "pool"]

    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert {"val_rho_scenes", "val_mse_scenes", "val_rho_pool", "val_mse_pool"} <= set(rows[0])


def test_heads_start_at_their_own_sources_means(two_sources):
    data = load_sources([SourceSpec(str(two_sources[0])), SourceSpec(str(two_sources[1]),
                                                                      "teacher")], fold=1)
    model = VNet(get_config("vnet_tiny").with_heads(("scenes", "pool")))
    start_at_means(model, data)
    for name, source in zip(("scenes", "pool"), data.sources):
        mean = sum(i.score for i in source.splits.train) / len(source.splits.train)
        assert model.heads[name].regressor.bias.item() == pytest.approx(mean, rel=1e-6)
    assert 6 < model.heads["pool"].regressor.bias.item() < 7


def test_the_resume_fingerprint_covers_every_source(two_sources, tmp_path):
    specs = [SourceSpec(str(two_sources[0])), SourceSpec(str(two_sources[1]), "teacher", 0.5)]
    before = load_sources(specs, fold=1).fingerprint()
    assert load_sources(specs, fold=1).fingerprint() == before
    assert load_sources([specs[0], SourceSpec(specs[1].data, "teacher", 0.4)],
                        fold=1).fingerprint() != before
    changed = tmp_path / "pool"
    changed.mkdir()
    (changed / "images").symlink_to(two_sources[1] / "images")
    (changed / "splits").mkdir()
    text = (two_sources[1] / "splits" / "teacher.txt").read_text()
    (changed / "splits" / "teacher.txt").write_text(text.replace(" 5.", " 4.", 1))
    assert load_sources([specs[0], SourceSpec(str(changed), "teacher", 0.5)],
                        fold=1).fingerprint() != before


def test_one_file_folds_validate_on_disjoint_parts():
    items = list(range(10))
    parts = [holdout(items, k, 0.2, "x")[1] for k in range(1, 6)]
    assert sorted(i for part in parts for i in part) == items
    train, val = holdout(items, 1, 0.2, "x")
    assert sorted(train + val) == items and train == sorted(train)
    with pytest.raises(MemoError, match="give 5 fold"):
        holdout(items, 6, 0.2, "x")


def test_source_specs_and_names():
    assert SourceSpec.parse("a/lamem:memcat:0.5") == SourceSpec("a/lamem", "memcat", 0.5)
    assert SourceSpec.parse("a/lnsim") == SourceSpec("a/lnsim")
    assert SourceSpec.parse("a/pool::2") == SourceSpec("a/pool", None, 2.0)
    for bad in ("a:b:0", "a:b:x", "a:b:1:2", ":b"):
        with pytest.raises(MemoError):
            SourceSpec.parse(bad)
    assert source_names([SourceSpec("x/lnsim")]) == ["score"]
    assert source_names([SourceSpec("x/lnsim"), SourceSpec("y/pool", "teacher")]) == [
        "lnsim", "pool"]
    assert source_names([SourceSpec("x/lamem", "a"), SourceSpec("x/lamem", "b.c")]) == [
        "lamem-a", "lamem-b_c"]
    with pytest.raises(MemoError, match="both be named"):
        source_names([SourceSpec("x/lamem"), SourceSpec("y/lamem")])


def test_bad_sources_are_usage_errors(two_sources, tmp_path):
    scenes, pool = two_sources
    out = str(tmp_path / "run")
    assert "DIR[:SPLIT[:WEIGHT]]" in invoke(["train", "--out", out], code=2).output
    assert "positive" in invoke(["train", str(scenes), "--data", f"{pool}:teacher:-1",
                                 "--out", out], code=2).output
    missing = invoke(["train", str(scenes), "--data", f"{pool}:nosuch", "--out", out], code=1)
    assert "nosuch.txt: no such split file" in missing.output
    assert "no such source" in invoke(["train", str(scenes), "--data", f"{pool}:teacher",
                                       "--select-on", "other", "--out", out], code=1).output
    assert not (tmp_path / "run").exists()
