"""The fast scoring paths (reduced-size JPEG decode, channels-last, reduced precision, the
OpenVINO engine) give the same scores as the plain float32 model on fully decoded photos, within 0.01."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from memocli import device
from memocli.checkpoint import load_checkpoint
from memocli.data import eval_transform
from memocli.decode import load_image
from memocli.files import default_weights_path
from memocli.predictor import Predictor, iter_predictions

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
@pytest.mark.parametrize(("precision", "native_bf16", "dtype"), [
    ("auto", True, "bf16"), ("auto", False, "fp32"), ("fp32", None, "fp32"),
    ("bf16", None, "bf16"),
], ids=["auto-on-a-bf16-cpu", "auto-on-an-avx2-cpu", "fp32", "bf16"])
def test_fast_scoring_matches_full_decode_float32(photos, precision, native_bf16, dtype, engine,
                                                  monkeypatch):
    """Every branch of ``auto`` on a CPU, whatever this machine's CPU is: one with bfloat16
    in hardware and one without are modelled by patching what memo asks."""
    if native_bf16 is not None:
        monkeypatch.setattr(device, "native_bf16_cpu", lambda: native_bf16)
    expected = reference_scores(default_weights_path(), photos)
    model = load_checkpoint(default_weights_path(), device="cpu").model
    predictor = Predictor(model, "cpu", precision, engine=engine)
    assert predictor.dtype_name == dtype
    got = {}
    for batch in predictor.iter_predictions(photos, batch_size=4, workers=0):
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


@pytest.mark.gpu
def test_cuda_float16_scoring_matches_full_decode_float32(photos):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    expected = reference_scores(default_weights_path(), photos)
    cuda = torch.device("cuda")
    model = load_checkpoint(default_weights_path(), device=cuda).model
    got = {}
    for batch in iter_predictions(model, photos, cuda, workers=2):  # fp16, pinned, 64/batch
        assert not batch.failures
        got.update(zip(batch.indices, batch.scores, strict=True))
    assert max(abs(got[i] - e) for i, e in enumerate(expected)) <= 0.01
