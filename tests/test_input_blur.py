"""The low-passes (``ModelConfig.input_blur`` and ``blur_strides``): they remove pixel-level
patterns and leave smooth ones, load any ResNet's weights, travel with the checkpoint, and
are what every engine, the feature cache and training see."""

import pytest
import torch

from memocli import engines
from memocli.checkpoint import load_checkpoint, save_checkpoint
from memocli.errors import MemoError
from memocli.features import cache_key
from memocli.model import BlurredConv2d, VNet, gaussian_kernel, with_antialias
from memocli.predictor import Predictor
from memocli.registry import get_config


@pytest.fixture(scope="module")
def plain_and_blurred():
    torch.manual_seed(5)
    plain = VNet(get_config("vnet_tiny")).eval()
    return plain, with_antialias(plain, 0.8, True)


def checkerboard(size: int) -> torch.Tensor:
    """``[1, 3, size, size]``: 0.5 +- 0.5, alternating pixel by pixel."""
    i = torch.arange(size)
    return (0.5 + 0.5 * (-1.0) ** (i[:, None] + i[None, :])).expand(1, 3, -1, -1)


def test_the_kernel_is_a_normalised_symmetric_gaussian():
    k = gaussian_kernel(0.8)
    assert k.shape == (7, 7)
    assert k.sum().item() == pytest.approx(1.0)
    assert torch.equal(k, k.flip(-1)) and torch.equal(k, k.transpose(-1, -2))
    assert k[3, 3] == k.max()


def test_a_pixel_checkerboard_is_removed_and_a_flat_image_kept(plain_and_blurred):
    plain, blurred = plain_and_blurred
    size = plain.cfg.input_size
    flat = torch.full((1, 3, size, size), 0.5)
    with torch.no_grad():
        moved_plain = (plain.stem(checkerboard(size)) - plain.stem(flat)).abs().max()
        moved_blurred = (blurred.stem(checkerboard(size)) - blurred.stem(flat)).abs().max()
        assert moved_blurred < 0.1 * moved_plain
        assert torch.allclose(blurred.stem(flat), plain.stem(flat), atol=1e-6)


def test_it_travels_with_the_checkpoint_and_older_checkpoints_load_without(
        plain_and_blurred, tmp_path):
    plain, blurred = plain_and_blurred
    path = save_checkpoint(tmp_path / "b.pt", blurred)
    loaded = load_checkpoint(path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert loaded.model.cfg.input_blur == 0.8 and loaded.model.cfg.blur_strides
        assert torch.equal(loaded.model(x), blurred(x))
        assert not torch.equal(loaded.model(x), plain(x))
    payload = torch.load(path, weights_only=True)
    assert set(payload["state_dict"]) == set(plain.state_dict())  # blurs: from the config
    del payload["cfg"]["input_blur"], payload["cfg"]["blur_strides"]  # an older checkpoint
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt").model.cfg
    assert old.input_blur == 0.0 and not old.blur_strides


def test_every_strided_convolution_of_the_stages_blurs_and_no_other(plain_and_blurred):
    plain, blurred = plain_and_blurred
    strided = [n for n, m in plain.backbone.named_modules()
               if isinstance(m, torch.nn.Conv2d) and m.stride != (1, 1)]
    swapped = [n for n, m in blurred.backbone.named_modules() if isinstance(m, BlurredConv2d)]
    assert swapped == [n for n in strided if n != "conv1"]  # the stem: the input blur's job
    assert len(swapped) == 6  # layer2-4: the 3x3 convolution and the shortcut's


def test_a_strided_convolution_no_longer_aliases_a_one_pixel_shift(plain_and_blurred):
    """A stride-2 convolution samples every other pixel: a pixel checkerboard and the same
    pattern shifted by one pixel give opposite outputs, unless blurred first."""
    conv = dict(plain_and_blurred[1].backbone.named_modules())["layer2.0.downsample.0"]
    plain = torch.nn.Conv2d(conv.in_channels, conv.out_channels, 1, 2, bias=False)
    plain.weight = conv.weight
    board = checkerboard(16)[:, :1].expand(1, conv.in_channels, -1, -1)
    shifted = board.roll(1, dims=-1)
    with torch.no_grad():
        moved_plain = (plain(board) - plain(shifted)).abs().max()
        moved_blurred = (conv(board) - conv(shifted)).abs().max()
    assert moved_blurred < 0.05 * moved_plain


def test_the_feature_cache_keeps_blurred_and_plain_features_apart(plain_and_blurred):
    plain, blurred = plain_and_blurred
    assert cache_key(plain, 4, "fp32") != cache_key(blurred, 4, "fp32")


def test_a_blur_out_of_range_is_refused(plain_and_blurred):
    with pytest.raises(MemoError, match="between 0 and 4"):
        with_antialias(plain_and_blurred[0], -1)


@pytest.mark.skipif(not engines.openvino_installed(), reason="OpenVINO is not installed")
def test_openvino_scores_a_blurred_model_as_torch_does(plain_and_blurred):
    blurred = plain_and_blurred[1]
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    expected, _ = Predictor(blurred, "cpu", "fp32").predict(x)
    ov = Predictor(blurred, "cpu", "fp32", engine="openvino", checkpoint_id="tiny-blurred")
    got, _ = ov.predict(x)
    assert ov.engine == "openvino"
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
