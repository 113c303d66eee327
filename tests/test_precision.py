"""The precision policy: which parts of a V-Net compute in float32, for scoring, the
OpenVINO conversion and training alike (memocli/precision.py)."""

from __future__ import annotations

import os

import pytest
import torch

from memocli import device, machine
from memocli.checkpoint import load_checkpoint
from memocli.errors import MemoError
from memocli.precision import Precision, Segment, compute_dtype
from memocli.predictor import Predictor


@pytest.fixture
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint, device="cpu").model.eval()


def batch(model, n=3):
    size = model.cfg.input_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_scoring_keeps_stem_stage1_and_heads_in_float32():
    bf16 = Precision.scoring("bf16")
    assert bf16.segments() == [Segment(0, 1, "fp32"), Segment(1, 4, "bf16")]
    assert bf16.heads_dtype == "fp32"
    assert Precision.scoring("fp32").segments() == [Segment(0, 4, "fp32")]
    assert bf16.segments(2, 3) == [Segment(2, 3, "bf16")]


def test_training_reduces_everything_on_cuda_and_native_bf16_cpus(monkeypatch):
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: False)
    cuda, cpu = Precision.training("cuda"), Precision.training("cpu")
    assert cuda.segments(0, 2) == [Segment(0, 2, "bf16")] and cuda.heads_dtype == "bf16"
    assert cpu.segments() == [Segment(0, 4, "fp32")] and cpu.heads_dtype == "fp32"
    assert cuda.segments(0, 0) == [Segment(0, 0, "bf16")]  # no stage frozen: the stem alone
    assert Precision.training("mps").dtype == "fp32"
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: True)
    assert Precision.training("cpu").segments() == [Segment(0, 4, "bf16")]
    assert Precision.training("cpu", "fp32").dtype == "fp32"  # asked for: kept
    with pytest.raises(MemoError, match="fp32 or bf16"):
        Precision.training("cpu", "fp16")


@pytest.mark.parametrize(("requested", "device_type", "native", "expected"), [
    ("auto", "cuda", False, "fp16"), ("auto", "mps", True, "fp32"),
    ("auto", "cpu", True, "bf16"), ("auto", "cpu", False, "fp32"),
    ("fp32", "cpu", True, "fp32"), ("bf16", "cpu", False, "bf16"),
])
def test_auto_dtype_follows_the_device_and_the_cpu(monkeypatch, requested, device_type,
                                                   native, expected):
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: native)
    assert compute_dtype(requested, device_type) == expected


def test_an_unknown_precision_is_refused():
    with pytest.raises(MemoError, match="unknown precision 'fp8'"):
        compute_dtype("fp8", "cpu")


def test_float32_policy_is_the_plain_model(model):
    x = batch(model)
    with torch.inference_mode():
        _, pooled = Precision.scoring("fp32").run_backbone(model, x, "cpu")
        expected = model.pooled_block_features(x)
        scores = Precision.scoring("fp32").run_heads(model, pooled, "cpu")
        assert torch.equal(scores, model(x))
    for a, b in zip(pooled, expected, strict=True):
        assert torch.equal(a, b)


def test_bf16_policy_rounds_only_stages_2_to_4(model):
    x = batch(model)
    first_stage = len(model.backbone.layer1)
    with torch.inference_mode():
        _, exact = Precision.scoring("fp32").run_backbone(model, x, "cpu")
        _, reduced = Precision.scoring("bf16").run_backbone(model, x, "cpu")
    assert all(p.dtype == torch.float32 for p in reduced)
    for a, b in zip(exact[:first_stage], reduced[:first_stage], strict=True):
        assert torch.equal(a, b)  # stem and stage 1 in float32: bit for bit
    assert not all(torch.equal(a, b) for a, b in
                   zip(exact[first_stage:], reduced[first_stage:], strict=True))


def test_the_predictor_scores_as_its_policy_says(model):
    x = batch(model)
    predictor = Predictor(model, "cpu", "bf16", engine="torch")
    assert predictor.precision == Precision.scoring("bf16")
    with torch.inference_mode():
        _, pooled = predictor.precision.run_backbone(model, x, "cpu")
        expected = model.head(pooled)
    scores, _ = predictor.predict(x)
    assert torch.equal(scores, expected)


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="no /proc/cpuinfo here")
def test_cpu_features_read_without_torch_agree_with_torch():
    """What auto decides by, read from /proc/cpuinfo, is what torch reads of this CPU."""
    caps = torch.cpu.get_capabilities()
    torch_flags = {name for name, present in caps.items() if present is True}
    cpu_features = machine.cpu_features.__wrapped__  # not the process's cached answer
    assert cpu_features() == {feature: any(f in torch_flags for f in names)
                              for feature, names in machine._FEATURES.items()}


def test_an_arm_cpu_has_no_x86_features_and_torch_is_not_asked(monkeypatch):
    monkeypatch.setattr(machine, "_proc_cpuinfo_flags", lambda: None)
    monkeypatch.setattr(machine.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(machine, "_capabilities", lambda: pytest.fail("asked torch"))
    assert not any(machine.cpu_features.__wrapped__().values())
