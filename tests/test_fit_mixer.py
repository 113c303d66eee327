"""memo fit-mixer: a gate that separates two generated domains, each domain mapped to its
own source's scale by least squares, deterministic, nothing else of the model changed."""

import random

import numpy as np
import pytest
import torch
from conftest import invoke
from PIL import Image

from memocli.checkpoint import load_checkpoint, save_checkpoint
from memocli.data import load_split
from memocli.model import VNet
from memocli.predictor import Predictor
from memocli.registry import get_config
from memocli.sources import SourceSpec, load_source_splits


def domain_folder(root, n, tint, texture, scale, split_files):
    """LaMem layout of ``n`` photos of one look: ``tint`` (RGB multipliers) and ``texture``
    (noise amplitude); score = ``scale[0] + scale[1] * level``."""
    rng = random.Random(hash(tint) % 1000)
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    lines = []
    for i in range(n):
        level = rng.random()
        noise = torch.rand(40, 40, 3) * texture
        pixels = ((level * 0.6 + noise) * torch.tensor(tint) * 255).clamp(0, 255)
        Image.fromarray(pixels.to(torch.uint8).numpy()).save(root / "images" / f"p{i:03d}.jpg")
        lines.append(f"p{i:03d}.jpg {scale[0] + scale[1] * level:.6f}")
    start = 0
    for name, size in split_files.items():
        (root / "splits" / f"{name}.txt").write_text("\n".join(lines[start:start + size]) + "\n")
        start += size
    return root


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    scene = domain_folder(root / "scenes", 60, (0.3, 1.0, 0.4), 0.05, (0.4, 0.4),
                          {"train_1": 40, "val_1": 20})
    other = domain_folder(root / "pool", 60, (1.0, 0.3, 0.5), 0.6, (0.7, 0.2),
                          {"teacher": 60})
    return scene, other


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """A random two-head tiny model, as memo train --data A --data B leaves it (one
    domain: the mixer passes the first head through)."""
    torch.manual_seed(3)
    model = VNet(get_config("vnet_tiny").with_heads(("scenes", "pool")))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "two.pt", model, metrics={},
                           train_data={"data": "generated"})


def fit(two_heads, domains, out, *extra, code=0):
    scene, other = domains
    return invoke(["fit-mixer", str(two_heads), "--scene", str(scene), "--other",
                   f"{other}:teacher", "--out", str(out), "--workers", "0", "-s", *extra], code)


def head_scores(model, paths):
    """Every head's score of each photo, computed through a float32 Predictor."""
    predictor = Predictor(model, "cpu", "fp32", engine="torch")
    batch = torch.stack([predictor.net_input(predictor.load_photo(p)) for p in paths])
    with torch.inference_mode():
        _, pooled = predictor.precision.run_backbone(model, batch, "cpu")
        return model.head_scores(pooled).double().numpy(), pooled[-1]


def test_the_gate_separates_the_domains_and_each_gets_its_own_scale(two_heads, domains,
                                                                      tmp_path):
    scene, other = domains
    result = fit(two_heads, domains, tmp_path / "mixed.pt", "--alpha", "0.3", "--beta", "0.2")
    assert "scene: gate" in result.stdout and "other: gate" in result.stdout
    before, after = load_checkpoint(two_heads).model, load_checkpoint(tmp_path / "mixed.pt")
    model = after.model
    assert model.cfg.mixer_domains == 2 and model.cfg.heads == ("scenes", "pool")
    for name, tensor in before.state_dict().items():  # backbone and heads as they were
        if not name.startswith("mixer."):
            assert torch.equal(tensor, model.state_dict()[name]), name

    other_splits = load_source_splits(SourceSpec(str(other), "teacher"), 1, 0.2)
    scene_val = load_split(scene, "val_1")
    s_scene, last_scene = head_scores(model, [i.path for i in scene_val])
    s_other, last_other = head_scores(model, [i.path for i in other_splits.val])
    ref, _ = head_scores(model, [i.path for i in other_splits.train])
    with torch.inference_mode():
        gate_scene = model.mixer.domain_weights(last_scene)[:, 0]
        gate_other = model.mixer.domain_weights(last_other)[:, 0]
    assert gate_scene.min() > 0.9 and gate_other.max() < 0.1

    mu, sd = ref.mean(0), ref.std(0, ddof=1)
    for domain, scores, items, blend in (
            (0, s_scene, scene_val, np.array([0.7, 0.3])),
            (1, s_other, other_splits.val, np.array([0.2, 0.8]))):
        targets = np.array([i.score for i in items])
        k, c = np.polyfit(((scores - mu) / sd) @ blend, targets, 1)  # least squares
        weight = model.mixer.weight[domain].detach().double().numpy()
        assert weight == pytest.approx(k * blend / sd, rel=1e-3, abs=1e-6)
        assert model.mixer.bias[domain].item() == pytest.approx(
            c - k * (blend * mu / sd).sum(), rel=1e-3, abs=1e-5)
        domain_out = scores @ weight + model.mixer.bias[domain].item()
        assert domain_out.mean() == pytest.approx(targets.mean(), abs=1e-3)  # its own scale
    assert after.meta["training"]["mixer"]["alpha"] == 0.3
    assert after.meta["metrics"]["mixer"]["scene"]["val_n"] == 20


def test_the_fit_is_deterministic(two_heads, domains, tmp_path):
    fit(two_heads, domains, tmp_path / "a.pt")
    fit(two_heads, domains, tmp_path / "b.pt")
    a = load_checkpoint(tmp_path / "a.pt").model.mixer.state_dict()
    b = load_checkpoint(tmp_path / "b.pt").model.mixer.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refusals(two_heads, domains, tiny_checkpoint, tmp_path):
    scene, other = domains
    result = invoke(["fit-mixer", str(tiny_checkpoint), "--scene", str(scene), "--other",
                     f"{other}:teacher", "--out", str(tmp_path / "x.pt"), "-s"], 1)
    assert "one head" in result.output and "Traceback" not in result.output
    (tmp_path / "taken.pt").write_bytes(b"mine")
    result = fit(two_heads, domains, tmp_path / "taken.pt", code=2)
    assert "exists" in result.output and (tmp_path / "taken.pt").read_bytes() == b"mine"


def test_named_blends_weigh_each_head_as_given(two_heads, domains, tmp_path):
    fit(two_heads, domains, tmp_path / "named.pt", "--scene-blend", "scenes=1",
        "--other-blend", "pool=0.5,scenes=0")
    after = load_checkpoint(tmp_path / "named.pt")
    weight = after.model.mixer.weight.detach()
    assert weight[0, 1] == 0 and weight[0, 0] != 0  # scene domain: the scenes head alone
    assert weight[1, 0] == 0 and weight[1, 1] != 0  # other domain: the pool head alone
    assert after.meta["training"]["mixer"]["scene_blend"] == {"scenes": 1.0}


def test_a_blend_naming_no_head_is_refused_in_one_line(two_heads, domains, tmp_path):
    result = fit(two_heads, domains, tmp_path / "x.pt", "--scene-blend", "lnsim=1", code=1)
    assert "no head 'lnsim'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.pt").exists()
    result = fit(two_heads, domains, tmp_path / "x.pt", "--other-blend", "pool", code=2)
    assert "is not a blend" in result.output
