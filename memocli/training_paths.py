"""How a model being trained meets its training images: the :class:`TrainingPath` protocol.

Two implementations train the same recipe (the same ``--augment``) and differ only in speed:

* :class:`CachedActivations`: the frozen stages' activations of every image and its mirror
  come from a :class:`~memocli.features.FeatureBank`; each step runs only the trainable
  stages (if any) and the heads. It serves ``--augment flip``, on any device.
* :class:`FullImages`: augmented images through the whole network every step. It serves
  every augmentation, and any dataset size.

:func:`training_path` is the one place that chooses between them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import distributed
from .data import (
    ImageScoreDataset,
    LabeledImage,
    NudgedViews,
    TwoViews,
    eval_transform,
    train_transform,
)
from .features import (
    FeatureBank,
    FeatureBanks,
    cached_activation_bytes,
    frozen_blocks,
)
from .inference import default_workers, worker_loader
from .model import STAGES, VNet
from .precision import Precision

#: A training batch: the path's input, target scores ``[B]``, source indices ``[B]``.
Batch = tuple[object, torch.Tensor, torch.Tensor]


class TrainingPath(Protocol):
    """What the fit loop and the LR range test need from a way of feeding the model.

    ``batch_size`` is per process; ``net`` is the module DDP wraps.
    """

    model: VNet
    net: nn.Module

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch of this process."""

    def train_batches(self, epoch: int) -> Iterable[Batch]:
        """This process's shuffled, augmented batches of ``epoch`` (same order on resume)."""

    def eval_batches(self, items: list[LabeledImage]) -> Iterable[object]:
        """Un-augmented inputs for ``items``, in order."""

    def predict(self, x: object, net: nn.Module | None = None) -> torch.Tensor:
        """Every head's score for a batch, ``[B, K]`` (through ``net`` when given);
        ``[B, V, K]`` for a training batch of ``V`` views of each example."""


class _CachedNet(nn.Module):
    """The trainable stages (if any) and the heads, on cached frozen activations."""

    def __init__(self, model: VNet, first_trainable: int, frozen_channels: list[int]):
        super().__init__()
        self.model = model
        self.first_trainable = first_trainable
        self.frozen_channels = frozen_channels

    def forward(self, pooled_frozen: torch.Tensor, act: torch.Tensor | None) -> torch.Tensor:
        pooled = list(torch.split(pooled_frozen, self.frozen_channels, dim=1))
        if act is not None:
            _, rest = self.model.run_stages(act, self.first_trainable)
            pooled += rest
        return self.model.head_scores(pooled)


_VIEW_SEED_OFFSET = 1 << 31  # mirror choices independent of the sampler's permutation


class CachedActivations:
    """Train on :class:`FeatureBank` entries: trainable stages (if any), then the heads.

    Each epoch every image is seen once, as itself or its mirror (a seeded coin per image
    and epoch): the ``flip`` augmentation.
    """

    def __init__(self, model: VNet, bank: FeatureBank, train: list[LabeledImage],
                 sources: torch.Tensor, batch_size: int, seed: int = 0):
        self.model = model
        self.bank = bank
        self.precision = bank.precision
        self.batch_size = batch_size
        self.seed = seed
        n_frozen = frozen_blocks(model, bank.frozen_stages)
        self.net = _CachedNet(model, bank.frozen_stages, model.block_channels[:n_frozen])
        self.train_pooled, self.train_act = bank.features(train)
        self.train_y = torch.tensor([i.score for i in train])
        self.train_sources = sources

    def predict(self, x: tuple[torch.Tensor, torch.Tensor | None],
                net: nn.Module | None = None) -> torch.Tensor:
        pooled_frozen, act = x
        device = next(self.model.parameters()).device
        act = None if act is None else act.to(device).float()
        with self.precision.autocast(device.type):
            return (net or self.net)(pooled_frozen.to(device).float(), act).float()

    @staticmethod
    def _select(pooled, act, idx, views):
        return pooled[idx, views], None if act is None else act[idx, views]

    def _sampler(self):
        return distributed.sampler(len(self.train_y), shuffle=True, seed=self.seed)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self._sampler()) / self.batch_size)

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        sampler = self._sampler()
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        views = torch.randint(0, 2, (len(self.train_y),), generator=torch.Generator().manual_seed(
            _VIEW_SEED_OFFSET + self.seed + epoch))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self._select(self.train_pooled, self.train_act, idx, views[idx])
            yield x, self.train_y[idx], self.train_sources[idx]

    def eval_batches(self, items: list[LabeledImage]) -> Iterator[object]:
        pooled, act = self.bank.features(items)
        step = self.batch_size * 4
        for start in range(0, len(items), step):
            idx = torch.arange(start, min(start + step, len(items)))
            yield self._select(pooled, act, idx, torch.zeros_like(idx))


class _ImageNet(nn.Module):
    """The whole network, every head: images ``[B, 3, H, W]`` -> ``[B, K]``."""

    def __init__(self, model: VNet):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.head_scores(self.model.pooled_block_features(images))


class _WithSource(Dataset):
    """``(image, score, source index)`` for each training example."""

    def __init__(self, images: ImageScoreDataset, sources: torch.Tensor):
        self.images = images
        self.sources = sources

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, score = self.images[index]
        return image, score, self.sources[index]


class FullImages:
    """Augmented images through the whole network (``--augment`` decides how).

    With ``pairs`` (``--consistency``) every training example is two views, and
    :meth:`predict` gives ``[B, 2, K]`` for them: two independent draws of the augmentation
    (``'independent'``) or a reframe and the same frame nudged (``'nudged'``).

    The model and its inputs are channels-last on CPUs and CUDA, as in scoring: oneDNN's
    bfloat16 convolutions are about 1.35x faster so (ResNet-50, stages 3-4 training,
    batch 32, 2 CPU cores with AMX: 24.9 against 18.4 images/s).
    """

    def __init__(self, model: VNet, train: list[LabeledImage], sources: torch.Tensor,
                 batch_size: int, workers: int | None, device: torch.device, augment: str,
                 seed: int = 0, precision: str = "auto", pairs: str | None = None):
        self.model = model
        self.net = _ImageNet(model)
        self.device = device
        self.precision = Precision.training(device.type, precision)
        self.memory_format = (torch.channels_last if device.type in ("cpu", "cuda")
                              else torch.contiguous_format)
        model.to(memory_format=self.memory_format)
        self.batch_size = batch_size
        self.seed = seed
        self.workers = default_workers(len(train), batch_size) if workers is None else workers
        cfg = model.cfg
        self.input_size = cfg.input_size
        self.views = 1 if pairs is None else 2
        transform = train_transform(cfg, augment)
        if pairs == "nudged":
            transform = NudgedViews(cfg)
        elif pairs is not None:
            transform = TwoViews(transform)
        self._train = _WithSource(ImageScoreDataset(train, transform, cfg.input_size), sources)

    def predict(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        views = x.shape[1] if x.dim() == 5 else 0
        if views:
            x = x.flatten(0, 1)
        with self.precision.autocast(self.device.type):  # all of it
            x = x.to(self.device, memory_format=self.memory_format, non_blocking=True)
            scores = (net or self.net)(x).float()
        return scores.unflatten(0, (-1, views)) if views else scores

    def _loader(self, dataset, sampler=None, views: int = 1) -> DataLoader:
        return worker_loader(dataset, self.batch_size, self.workers, self.input_size, views,
                             sampler=sampler, pin_memory=self.device.type == "cuda",
                             drop_last=sampler is not None and len(sampler) > self.batch_size)

    def _sampler(self):
        return distributed.sampler(len(self._train), shuffle=True, seed=self.seed)

    def steps_per_epoch(self) -> int:
        return len(self._loader(self._train, self._sampler(), self.views))

    def train_batches(self, epoch: int) -> DataLoader:
        sampler = self._sampler()
        sampler.set_epoch(epoch)
        return self._loader(self._train, sampler, self.views)

    def eval_batches(self, items: list[LabeledImage]) -> Iterator[object]:
        cfg = self.model.cfg
        for x, _ in self._loader(ImageScoreDataset(items, eval_transform(cfg), cfg.input_size)):
            yield x


#: Most host memory the activation cache may take when stages train too.
CACHE_BUDGET_BYTES = 8 << 30


def caches_activations(model: VNet, n_images: int, train_stages: int, augment: str) -> bool:
    """Whether to train on cached frozen activations: the one place that decides.

    Only for ``augment='flip'`` (the cache holds each image and its mirror, nothing else).
    Always with a frozen backbone; when stages train too, when the cache for ``n_images``
    fits in :data:`CACHE_BUDGET_BYTES`. The recipe is the same either way.
    """
    if augment != "flip":
        return False
    if train_stages == 0:
        return True
    frozen = len(STAGES) - train_stages
    return cached_activation_bytes(model, n_images, frozen) <= CACHE_BUDGET_BYTES


def training_path(model: VNet, train: list[LabeledImage], sources: torch.Tensor,
                  n_images: int, train_stages: int, augment: str, device: torch.device,
                  batch_size: int, workers: int | None, seed: int,
                  banks: FeatureBanks, precision: str = "auto",
                  pairs: str | None = None) -> TrainingPath:
    """How ``model`` (its last ``train_stages`` stages unfrozen) meets ``train``.

    ``sources`` holds each training example's source (head) index; ``n_images`` is how many
    images the run will ever feed (training, validation and test), for the cache's size.
    ``batch_size`` is the global batch, split between processes; ``precision`` is what
    :meth:`Precision.training` resolves (the banks' own when activations are cached);
    ``pairs`` shows two views of each example (full images only; see :class:`FullImages`).
    """
    local = distributed.local_batch_size(batch_size)
    if pairs is None and caches_activations(model, n_images, train_stages, augment):
        bank = banks.bank(model, len(STAGES) - train_stages)
        return CachedActivations(model, bank, train, sources, local, seed)
    return FullImages(model, train, sources, local, workers, device, augment, seed, precision,
                      pairs)
