import pytest
import torch
from torch import nn

from memocli import VNet
from memocli.errors import MemoError
from memocli.registry import MODELS, get_config


def test_default_vnet_is_resnet50_with_16_blocks_into_lstm():
    model = VNet()
    assert model.cfg.name == "vnet_r50"
    assert len(model.block_names) == 16
    assert model.block_channels[0] == 256 and model.block_channels[-1] == 2048
    assert all(p.out_channels == 128 for p in model.projections)
    assert model.lstm.input_size == 128
    assert model.regressor.out_features == 1


@pytest.mark.parametrize("name,blocks", [("vnet_r101", 33), ("vnet_r152", 50)])
def test_deeper_backbones_feed_every_block(name, blocks):
    assert len(VNet(get_config(name)).block_names) == blocks


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (50, 70)])
def test_any_input_size_gives_one_score_per_image(size):
    model = VNet(get_config("vnet_tiny")).eval()
    out = model(torch.rand(3, 3, *size))
    assert out.shape == (3,)
    assert torch.isfinite(out).all()


def test_forward_backward_reaches_every_parameter():
    model = VNet(get_config("vnet_tiny")).train()
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_head_on_pooled_features_equals_forward():
    model = VNet(get_config("vnet_tiny")).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.head(model.pooled_block_features(x)), model(x), atol=1e-6)


def test_freeze_keeps_frozen_batchnorm_in_eval_mode():
    model = VNet(get_config("vnet_tiny"))
    model.freeze_backbone(train_stages=1)
    model.train()
    assert model.trainable_stages() == {"layer4"}
    assert not model.backbone.layer3.training and model.backbone.layer4.training
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
    assert all(p.requires_grad for p in model.lstm.parameters())


def test_backbone_state_must_fit():
    model = VNet(get_config("vnet_tiny"))
    other = VNet()
    with pytest.raises(MemoError, match="do not fit"):
        model.load_backbone_state(other.backbone.state_dict())
    state = {f"{k}": v for k, v in VNet(get_config("vnet_tiny")).backbone.state_dict().items()}
    state["fc.weight"] = torch.zeros(3, 3)  # classifier keys are ignored
    model.load_backbone_state(state)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(MemoError, match="unknown model 'resnet9'"):
        get_config("resnet9")
    assert "vnet_r50" in MODELS


def test_vnet_builds_without_downloading(monkeypatch):
    import torch.hub

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("VNet() tried to download weights"))
    assert isinstance(VNet(), nn.Module)
