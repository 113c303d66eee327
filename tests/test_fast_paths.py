"""The fast scoring paths (reduced-size JPEG decode, channels-last, reduced precision, the
OpenVINO engine) give the same scores as the plain float32 model on fully decoded photos, within 0.01."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from memocli.checkpoint import load_checkpoint
from memocli.data import eval_transform, load_image
from memocli.device import pick_dtype
from memocli.files import default_weights_path
from memocli.predictor import iter_predictions

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "samples").glob("*.jpg"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The sample photos, and two of them upscaled to 12 MP camera-sized JPEGs."""
    big = tmp_path_factory.mktemp("big")
    out = list(SAMPLES)
    for src in SAMPLES[:2]:
        with Image.open(src) as img:
            path = big / f"{src.stem}-12mp.jpg"
            img.convert("RGB").resize((4000, 3000), Image.BICUBIC).save(path, quality=92)
            out.append(path)
    return out


def reference_scores(weights: Path, paths: list[Path]) -> list[float]:
    """Full decode, float32, default memory layout, one photo at a time."""
    model = load_checkpoint(weights, device="cpu").model.eval()
    transform = eval_transform(model.cfg)
    with torch.inference_mode():
        return [model(transform(load_image(p))[None]).item() for p in paths]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "openvino"])
@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])
def test_fast_scoring_matches_full_decode_float32(photos, precision, engine):
    expected = reference_scores(default_weights_path(), photos)
    model = load_checkpoint(default_weights_path(), device="cpu").model
    got = {}
    for batch in iter_predictions(model, photos, torch.device("cpu"), batch_size=4, workers=0,
                                  precision=precision, engine=engine):
        assert not batch.failures
        got.update(zip(batch.indices, batch.scores, strict=True))
    diffs = [abs(got[i] - e) for i, e in enumerate(expected)]
    assert max(diffs) <= 0.01, dict(zip([p.name for p in photos], diffs, strict=True))


def test_reduced_size_decode_keeps_enough_pixels(photos):
    big = photos[-1]
    with Image.open(big) as img:
        assert img.size == (4000, 3000)
    small = load_image(big, min_side=224)
    assert min(small.size) >= 224 and small.size[0] <= 1000  # DCT-scaled, not 12 MP


def test_auto_precision_is_fp16_on_cuda_and_float32_on_mps():
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert pick_dtype("auto", torch.device("mps")) is None
    assert pick_dtype("fp32", torch.device("cpu")) is None
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.gpu
def test_cuda_float16_scoring_matches_full_decode_float32(photos):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    expected = reference_scores(default_weights_path(), photos)
    device = torch.device("cuda")
    model = load_checkpoint(default_weights_path(), device=device).model
    got = {}
    for batch in iter_predictions(model, photos, device, workers=2):  # fp16, pinned, 64/batch
        assert not batch.failures
        got.update(zip(batch.indices, batch.scores, strict=True))
    assert max(abs(got[i] - e) for i, e in enumerate(expected)) <= 0.01
