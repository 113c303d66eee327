import pytest
import torch
from torch import nn

from memocli import VNet
from memocli.errors import MemoError
from memocli.model import upgrade_state_dict
from memocli.registry import MODELS, get_config


def test_default_vnet_is_resnet50_with_16_blocks_into_lstm():
    model = VNet()
    assert model.cfg.name == "vnet_r50"
    assert len(model.block_names) == 16
    assert model.block_channels[0] == 256 and model.block_channels[-1] == 2048
    head = model.primary_head
    assert list(model.heads) == ["score"] and model.mixer is None
    assert all(p.out_channels == 128 for p in head.projections)
    assert head.lstm.input_size == 128
    assert head.regressor.out_features == 1


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
    assert all(p.requires_grad for p in model.primary_head.lstm.parameters())


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
    """torchvision fetches pretrained weights through the name its models/_api.py bound at
    import (WeightsEnum.get_state_dict), not torch.hub's: that name is the one replaced,
    so a backbone built with ``weights="DEFAULT"`` fails here, downloaded or cached."""
    import torchvision.models._api as torchvision_api

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("VNet() asked for pretrained weights"))
    assert isinstance(VNet(), nn.Module)


def test_several_heads_share_one_backbone_pass_and_mixer_starts_as_first_head():
    cfg = get_config("vnet_tiny").with_heads(("lnsim", "teacher"))
    model = VNet(cfg).eval()
    with torch.no_grad():
        pooled = model.pooled_block_features(torch.rand(3, 3, 64, 64))
        scores = model.head_scores(pooled)
        assert scores.shape == (3, 2)
        assert not torch.allclose(scores[:, 0], scores[:, 1])
        assert torch.allclose(model.head(pooled), scores[:, 0], atol=1e-6)


def test_gated_mixer_blends_domains_by_the_gate():
    cfg = get_config("vnet_tiny").with_heads(("a", "b"), mixer_domains=2)
    model = VNet(cfg).eval()
    with torch.no_grad():
        model.mixer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        model.mixer.bias.copy_(torch.tensor([0.0, 0.5]))
        pooled = model.pooled_block_features(torch.rand(4, 3, 64, 64))
        s = model.head_scores(pooled)
        g = model.mixer.domain_weights(pooled[-1])
        assert torch.allclose(g.sum(1), torch.ones(4))
        expected = g[:, 0] * s[:, 0] + g[:, 1] * (0.5 + 2 * s[:, 1])
        assert torch.allclose(model.head(pooled), expected, atol=1e-6)
        model.mixer.gate.weight.zero_()
        model.mixer.gate.bias.copy_(torch.tensor([20.0, -20.0]))  # gate all on domain 0
        assert torch.allclose(model.head(pooled), s[:, 0], atol=1e-5)


def test_head_names_must_be_distinct():
    with pytest.raises(MemoError):
        get_config("vnet_tiny").with_heads(("a", "a"))


def test_state_dict_from_before_named_heads_loads_as_head_score():
    model = VNet(get_config("vnet_tiny"))
    old = {k.removeprefix("heads.score."): v for k, v in model.state_dict().items()}
    assert "regressor.weight" in old and "h0" in old
    fresh = VNet(get_config("vnet_tiny"))
    fresh.load_state_dict(upgrade_state_dict(old), strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), model.eval()(x))
