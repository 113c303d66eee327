"""V-Net (paper §3.2): a ResNet whose every bottleneck block feeds an LSTM.

Each residual block's output is global-average-pooled, projected by its own 1x1 conv to
``proj_channels`` and the sequence of block vectors, in block order, goes into an LSTM; a
linear layer on the final hidden state gives the memorability score.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet
from torchvision.models.resnet import Bottleneck, ResNet

from .errors import MemoError
from .registry import DEFAULT_MODEL, STAGES, ModelConfig, get_config


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """``[k, k]`` normalised 2-D Gaussian of ``sigma`` pixels, ``k = 2 * ceil(3 * sigma) + 1``."""
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    return g[:, None] * g[None, :]


def binomial_kernel() -> torch.Tensor:
    """``[3, 3]`` normalised binomial filter (1 2 1) x (1 2 1) / 16."""
    g = torch.tensor([1.0, 2.0, 1.0])
    return g[:, None] * g[None, :] / 16


def low_pass(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` filtered channel by channel with ``kernel`` ``[k, k]``, edges
    reflected (a flat image stays as it is)."""
    r, c = kernel.shape[-1] // 2, x.shape[1]
    weight = kernel.to(x.dtype).expand(c, 1, -1, -1).contiguous()
    return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), weight, groups=c)


class BlurredConv2d(nn.Conv2d):
    """A strided convolution that low-passes its input first (binomial 3x3): since both are
    linear, the same as convolving, blurring, then subsampling. Its weights are those of a
    plain ``nn.Conv2d`` (same names), so it loads any ResNet's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("blur", binomial_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(low_pass(x, self.blur))


def blur_strided_convs(net: ResNet) -> None:
    """Swap every strided convolution of the residual stages for a :class:`BlurredConv2d`."""
    for stage in STAGES:
        for name, conv in list(getattr(net, stage).named_modules()):
            if isinstance(conv, nn.Conv2d) and conv.stride != (1, 1):
                parent, _, attr = f"{stage}.{name}".rpartition(".")
                setattr(net.get_submodule(parent), attr, BlurredConv2d(
                    conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, conv.groups, conv.bias is not None))


def build_backbone(cfg: ModelConfig) -> ResNet:
    """A randomly initialised torchvision ResNet (never downloads anything)."""
    if cfg.backbone == "tiny":
        net = ResNet(Bottleneck, list(cfg.stage_blocks), width_per_group=16)
    else:
        net = getattr(resnet, cfg.backbone)(weights=None)
    net.fc = nn.Identity()
    net.avgpool = nn.Identity()
    if cfg.blur_strides:
        blur_strided_convs(net)
    return net


def residual_blocks(backbone: ResNet) -> list[tuple[str, nn.Module]]:
    """The bottleneck blocks in forward order, with their names (``layer4.2``)."""
    return [
        (f"{stage}.{i}", block)
        for stage in STAGES
        for i, block in enumerate(getattr(backbone, stage))
    ]


class VNetHead(nn.Module):
    """One V-Net head: each block's pooled vector projected by its own 1x1 conv, the sequence
    run through an LSTM from learnt initial states, a linear layer on the last hidden state.

    Args:
        block_channels: channels of each residual block's output, in forward order.
        proj_channels: channels of each projection (the paper's 128).
        hidden: LSTM hidden size.
    """

    def __init__(self, block_channels: list[int], proj_channels: int, hidden: int):
        super().__init__()
        self.projections = nn.ModuleList(
            nn.Conv2d(c, proj_channels, kernel_size=1) for c in block_channels
        )
        self.lstm = nn.LSTM(proj_channels, hidden, batch_first=True)
        # Paper §3.2.2: h0 and c0 start as He-initialised vectors (learnt here, so the
        # prediction is deterministic).
        self.h0 = nn.Parameter(nn.init.kaiming_normal_(torch.empty(1, hidden)))
        self.c0 = nn.Parameter(nn.init.kaiming_normal_(torch.empty(1, hidden)))
        self.regressor = nn.Linear(hidden, 1)

    def forward(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """Score ``[B]`` from the pooled block vectors (``[B, C_i]`` each)."""
        if len(pooled) != len(self.projections):
            raise MemoError(f"expected {len(self.projections)} block features, got {len(pooled)}")
        seq = torch.stack(
            [proj(p[:, :, None, None]).flatten(1) for proj, p in zip(self.projections, pooled)],
            dim=1,
        )  # [B, n_blocks, proj_channels]
        batch = seq.shape[0]
        h0 = self.h0.expand(batch, -1).unsqueeze(0).contiguous()  # [1, B, hidden]
        c0 = self.c0.expand(batch, -1).unsqueeze(0).contiguous()
        _, (h_last, _) = self.lstm(seq, (h0, c0))
        return self.regressor(h_last[-1]).squeeze(1)  # [B]


class HeadMixer(nn.Module):
    """Combines several heads' scores into the model's one score.

    ``score = sum_d g_d(x) * (bias[d] + sum_k weight[d, k] * s_k(x))``: each of D "domains"
    is an affine blend of the K head scores, and a gate (softmax of a linear map of the last
    block's pooled features) says how much each domain applies to a photo. With D = 1 there
    is no gate. A new mixer passes the first head's score through unchanged.
    """

    def __init__(self, n_heads: int, n_domains: int, gate_channels: int):
        super().__init__()
        weight = torch.zeros(n_domains, n_heads)
        weight[:, 0] = 1.0
        self.weight = nn.Parameter(weight)  # [D, K]
        self.bias = nn.Parameter(torch.zeros(n_domains))  # [D]
        self.gate = nn.Linear(gate_channels, n_domains) if n_domains > 1 else None

    def domain_weights(self, last_pooled: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` gate weights (all ones with a single domain)."""
        if self.gate is None:
            return last_pooled.new_ones(last_pooled.shape[0], 1)
        return torch.softmax(self.gate(last_pooled.float()), dim=1)

    def forward(self, scores: torch.Tensor, last_pooled: torch.Tensor) -> torch.Tensor:
        """``[B]`` from head scores ``[B, K]`` and the last block's pooled features ``[B, C]``."""
        per_domain = scores @ self.weight.T + self.bias  # [B, D]
        return (self.domain_weights(last_pooled) * per_domain).sum(1)


class VNet(nn.Module):
    """The V-Net memorability regressor, with one head or several over one backbone pass.

    Args:
        cfg: architecture to build; defaults to the registered ``vnet_r50``.
    """

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg or get_config(DEFAULT_MODEL)
        self.backbone = build_backbone(self.cfg)
        blocks = residual_blocks(self.backbone)
        self.block_names = [name for name, _ in blocks]
        self.block_channels = [block.conv3.out_channels for _, block in blocks]
        self.pool = nn.AdaptiveAvgPool2d(1)
        # fixed, not learnt: rebuilt from the config, so not part of the state dict
        self.register_buffer("input_kernel", gaussian_kernel(self.cfg.input_blur)
                             if self.cfg.input_blur > 0 else None, persistent=False)
        self.heads = nn.ModuleDict({
            name: VNetHead(self.block_channels, self.cfg.proj_channels, self.cfg.lstm_hidden)
            for name in self.cfg.heads
        })
        self.mixer = (
            HeadMixer(len(self.cfg.heads), self.cfg.mixer_domains, self.block_channels[-1])
            if len(self.cfg.heads) > 1 else None
        )

    @property
    def primary_head(self) -> VNetHead:
        """The first head (the only one of a single-source model)."""
        return self.heads[self.cfg.heads[0]]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The input low-pass (``cfg.input_blur``, edges reflected), then the ResNet stem
        (conv1, bn1, relu, maxpool)."""
        if self.input_kernel is not None:
            x = low_pass(x, self.input_kernel)
        net = self.backbone
        return net.maxpool(net.relu(net.bn1(net.conv1(x))))

    def run_stages(self, x: torch.Tensor, first: int = 0, last: int = 4
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run ResNet stages ``first``..``last - 1`` (0-based) on ``x``.

        Returns the last block's output and the GAP of every block run (``[B, C_i]`` each).
        """
        pooled = []
        for stage in STAGES[first:last]:
            for block in getattr(self.backbone, stage):
                x = block(x)
                pooled.append(self.pool(x).flatten(1))
        return x, pooled

    def pooled_block_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """GAP of every residual block's output: a list of ``[B, C_i]`` tensors."""
        return self.run_stages(self.stem(x))[1]

    def head_scores(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """Every head's score, ``[B, K]`` in ``cfg.heads`` order."""
        return torch.stack([head(pooled) for head in self.heads.values()], dim=1)

    def head(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """The model's score ``[B]`` from the pooled block vectors: the single head's, or
        the heads' scores combined by the mixer."""
        if self.mixer is None:
            return self.primary_head(pooled)
        return self.mixer(self.head_scores(pooled), pooled[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score a batch of normalised images ``[B, 3, H, W]`` -> ``[B]``."""
        return self.head(self.pooled_block_features(x))

    def stage_names(self) -> list[str]:
        """Backbone layers Grad-CAM can target: stages and their blocks."""
        return list(STAGES) + self.block_names

    def load_backbone_state(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a torchvision-format ResNet state dict (its ``fc.*`` keys are ignored)."""
        trunk = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = self.backbone.load_state_dict(trunk, strict=False)
        except RuntimeError as e:  # shape mismatches raise even when not strict
            raise MemoError(f"backbone weights do not fit {self.cfg.backbone}: "
                            f"{str(e).splitlines()[1].strip()}") from None
        if missing or unexpected:
            raise MemoError(
                f"backbone weights do not fit {self.cfg.backbone}: "
                f"{len(missing)} missing keys (e.g. {missing[:2]}), "
                f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]})"
            )

    def freeze_backbone(self, train_stages: int = 0) -> None:
        """Freeze the backbone except its last ``train_stages`` ResNet stages."""
        trainable = {f"layer{i}" for i in range(5 - train_stages, 5)} if train_stages else set()
        for name, child in self.backbone.named_children():
            for p in child.parameters():
                p.requires_grad = name in trainable

    def train(self, mode: bool = True) -> VNet:
        """Like ``nn.Module.train``, but frozen backbone parts keep eval-mode batch norm."""
        super().train(mode)
        if mode:
            trainable = self.trainable_stages()
            for name, child in self.backbone.named_children():
                if name not in trainable:
                    child.eval()
        return self

    def trainable_stages(self) -> set[str]:
        """Names of backbone children that have any trainable parameter."""
        return {
            name for name, child in self.backbone.named_children()
            if any(p.requires_grad for p in child.parameters())
        }


def with_antialias(model: VNet, input_blur: float | None = None,
                   blur_strides: bool | None = None) -> VNet:
    """``model``'s weights in a V-Net with these low-passes (None: keep the model's; see
    :class:`~memocli.registry.ModelConfig`), on the same device and in the same mode."""
    cfg = model.cfg.with_antialias(
        model.cfg.input_blur if input_blur is None else input_blur,
        model.cfg.blur_strides if blur_strides is None else blur_strides)
    if cfg == model.cfg:
        return model
    new = VNet(cfg)
    new.load_state_dict(model.state_dict())
    return new.to(next(model.parameters()).device).train(model.training)


class StageSlice(nn.Module):
    """ResNet stages ``first``..``last - 1`` of a V-Net (with the stem when ``first`` is 0)
    as a module of their own, for an inference engine to convert: it returns every block's
    pooled vector, preceded by the last block's output unless ``last`` is the end."""

    def __init__(self, vnet: VNet, first: int, last: int):
        super().__init__()
        self.vnet, self.first, self.last = vnet, first, last

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.first == 0:
            x = self.vnet.stem(x)
        x, pooled = self.vnet.run_stages(x, self.first, self.last)
        return (*pooled,) if self.last == len(STAGES) else (x, *pooled)


class WholeVNet(nn.Module):
    """A V-Net as one module for an inference engine to convert: its score, the output of
    every stage but the last, and every block's pooled vector (``[B]``, ``[B, C, H, W]``
    each, then ``[B, C_i]`` each), so that the converted network can be cut where the
    precision policy changes dtype (:mod:`memocli.ov_network`)."""

    def __init__(self, vnet: VNet):
        super().__init__()
        self.vnet = vnet

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.vnet.stem(x)
        pooled, stage_outputs = [], []
        for stage in range(len(STAGES)):
            x, part = self.vnet.run_stages(x, stage, stage + 1)
            pooled += part
            stage_outputs.append(x)
        return (self.vnet.head(pooled), *stage_outputs[:-1], *pooled)


_HEAD_KEYS = ("projections.", "lstm.", "regressor.", "h0", "c0")


def upgrade_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key names of a single-head checkpoint written before heads had names (memo 0.1)
    mapped to head ``score``; other state dicts come back unchanged."""
    if any(k.startswith("heads.") for k in state_dict):
        return state_dict
    return {
        (f"heads.score.{k}" if k.startswith(_HEAD_KEYS) else k): v for k, v in state_dict.items()
    }
