"""The checkpoints shipped in weights/ are complete memo checkpoints that say what they are."""

import pytest
import torch

from memocli.catalog import CATALOG, bundled_weights_dir
from memocli.checkpoint import load_checkpoint
from memocli.ensemble import mirror_average, read_manifest
from memocli.files import default_weights_path, hash_file

R50, R152, ACCURATE, STABLE = (bundled_weights_dir() / m.filename for m in CATALOG)


@pytest.mark.slow
def test_default_weights_are_the_bundled_resnet50():
    assert default_weights_path() == R50
    loaded = load_checkpoint(R50)
    assert loaded.cfg.name == "vnet_r50"
    assert R50.stat().st_size < 100e6


@pytest.mark.parametrize("path", [R50, R152], ids=["r50", "r152"])
def test_bundled_checkpoints_carry_their_provenance(path):
    meta = torch.load(path, map_location="cpu", weights_only=True)
    assert meta["cfg"]["mean"] == [0.0, 0.0, 0.0] and meta["cfg"]["std"] == [1.0, 1.0, 1.0]
    assert "package" in meta["backbone_init"]
    data = meta["train_data"]  # several sources (the default): LNSIM's is the first
    lnsim = data["sources"][0] if "sources" in data else data
    assert lnsim["sizes"] == {"train": 1500, "val": 200, "test": 300}
    assert {"val_rho", "val_mse", "test_rho", "test_mse", "epoch"} <= set(meta["metrics"])
    assert meta["training"]["lr_max"] > 0


def test_the_accurate_ensemble_names_the_bundled_checkpoints():
    """A new release of either model needs `memo fit-ensemble` again (docs/model.md)."""
    manifest = read_manifest(ACCURATE)
    assert [m.weights for m in manifest.members] == ["r50", "r152"]
    assert [m.sha256 for m in manifest.members] == [hash_file(R50), hash_file(R152)]
    assert manifest.fitted_on["split"] == "val_1"  # standardised on validation, not test


def test_the_stable_manifest_is_the_bundled_default_and_its_mirror_image():
    """A new default needs `memo mirror-average r50 --out weights/memo-stable.json --force`."""
    manifest = read_manifest(STABLE)
    assert [(m.weights, m.sha256, m.mirror) for m in manifest.members] == [
        ("r50", hash_file(R50), False), ("r50", hash_file(R50), True)]
    assert STABLE.read_text() == mirror_average("r50", STABLE).to_json()
