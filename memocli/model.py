"""V-Net (paper §3.2): a ResNet whose every bottleneck block feeds an LSTM.

Each residual block's output is global-average-pooled, projected by its own 1x1 conv to
``proj_channels`` and the sequence of block vectors, in block order, goes into an LSTM; a
linear layer on the final hidden state gives the memorability score.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.resnet import Bottleneck, ResNet

from .errors import MemoError
from .registry import DEFAULT_MODEL, ModelConfig, get_config

STAGES = ("layer1", "layer2", "layer3", "layer4")


def build_backbone(cfg: ModelConfig) -> ResNet:
    """A randomly initialised torchvision ResNet (never downloads anything)."""
    if cfg.backbone == "tiny":
        net = ResNet(Bottleneck, list(cfg.stage_blocks), width_per_group=16)
    else:
        net = getattr(resnet, cfg.backbone)(weights=None)
    net.fc = nn.Identity()
    net.avgpool = nn.Identity()
    return net


def residual_blocks(backbone: ResNet) -> list[tuple[str, nn.Module]]:
    """The bottleneck blocks in forward order, with their names (``layer4.2``)."""
    return [
        (f"{stage}.{i}", block)
        for stage in STAGES
        for i, block in enumerate(getattr(backbone, stage))
    ]


class VNet(nn.Module):
    """The V-Net memorability regressor.

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
        self.projections = nn.ModuleList(
            nn.Conv2d(c, self.cfg.proj_channels, kernel_size=1) for c in self.block_channels
        )
        hidden = self.cfg.lstm_hidden
        self.lstm = nn.LSTM(self.cfg.proj_channels, hidden, batch_first=True)
        # Paper §3.2.2: h0 and c0 start as He-initialised vectors (learnt here, so the
        # prediction is deterministic).
        self.h0 = nn.Parameter(nn.init.kaiming_normal_(torch.empty(1, hidden)))
        self.c0 = nn.Parameter(nn.init.kaiming_normal_(torch.empty(1, hidden)))
        self.regressor = nn.Linear(hidden, 1)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The ResNet stem (conv1, bn1, relu, maxpool)."""
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

    def head(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """Project each pooled block vector, run the LSTM over them, regress the score."""
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
