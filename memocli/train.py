"""Training and evaluation of V-Net (paper §3.3-3.4).

Two paths share one loop:

* frozen backbone (``train_stages=0``, the CPU-friendly default): every image's pooled
  block activations are computed once (plus a mirrored view for augmentation) and only the
  head (projections, LSTM, regressor) is trained on them;
* fine-tuning (``train_stages=K``): the last K ResNet stages train too, on augmented
  images, with mixed precision on CUDA.

Under ``torchrun`` (see :mod:`memocli.distributed`) both paths train with
DistributedDataParallel: each process takes its share of every global batch, of the
backbone precomputation and of each evaluation; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .data import (
    ImageScoreDataset,
    LabeledImage,
    dataset_fingerprint,
    eval_transform,
    train_transform,
)
from .errors import MemoError
from .inference import default_workers
from .metrics import regression_metrics
from .model import STAGES, VNet
from .schedule import one_cycle_factor, smooth, suggest_lr

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (stored next to the checkpoints)."""

    epochs: int = 10
    batch_size: int = 32
    lr_max: float = 1e-3
    weight_decay: float = 1e-4
    div: float = 10.0
    final_div: float = 100.0
    cycle_frac: float = 0.9
    train_stages: int = 0
    seed: int = 0
    workers: int | None = None


@dataclass
class Splits:
    """The labelled examples of one fold, and where they came from."""

    data: str
    train: list[LabeledImage]
    val: list[LabeledImage]
    test: list[LabeledImage] | None = None
    names: tuple[str, str, str | None] = ("train", "val", None)

    def describe(self) -> dict:
        """Plain-data description for checkpoint metadata."""
        parts = {"train": self.train, "val": self.val, "test": self.test or []}
        return {
            "data": self.data,
            "splits": dict(zip(("train", "val", "test"), self.names)),
            "sizes": {k: len(v) for k, v in parts.items()},
            "fingerprints": {k: dataset_fingerprint(v) for k, v in parts.items() if v},
        }


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators."""
    random.seed(seed)
    torch.manual_seed(seed)


def _progress(iterable, silent: bool, **kwargs):
    return tqdm(iterable, disable=silent or not distributed.is_main(), leave=False,
                dynamic_ncols=True, **kwargs)


class FeatureBank:
    """The frozen part of a V-Net, computed once per image and its mirror image.

    With ``frozen_stages=4`` (a fully frozen backbone) an entry is the pooled output of every
    block, ``[2, D]`` with D the sum of the block channel counts (15,104 for ResNet-50).
    With fewer frozen stages it is also the activation where the trainable stages start,
    ``[2, C, h, w]`` (1024x14x14 for ResNet-50 at 224 with one trainable stage), so that
    fine-tuning the last stages costs only their own compute. Stored as fp16.

    With ``store`` (a folder), entries persist across runs in a file named after a digest of
    the frozen weights, the preprocessing and ``frozen_stages``; an entry is reused only
    while its image's size and modification time are unchanged.
    """

    def __init__(self, model: VNet, device: torch.device, batch_size: int = 32,
                 workers: int | None = None, silent: bool = False, frozen_stages: int = 4,
                 store: Path | None = None):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.workers = workers
        self.silent = silent
        self.frozen_stages = frozen_stages
        self._pooled: dict[Path, torch.Tensor] = {}
        self._activations: dict[Path, torch.Tensor] = {}
        self._file = Path(store) / f"features-{self._digest()}.pt" if store else None
        if self._file is not None and self._file.is_file():
            self._load()

    def _digest(self) -> str:
        """What the entries depend on: preprocessing, frozen stages and their weights."""
        h = hashlib.sha256(json.dumps(
            {"cfg": self.model.cfg.to_dict(), "frozen_stages": self.frozen_stages}
        ).encode())
        frozen = ("conv1.", "bn1.", *(f"{s}." for s in STAGES[:self.frozen_stages]))
        for name, tensor in self.model.backbone.state_dict().items():
            if name.startswith(frozen):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    @staticmethod
    def _stat(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def _load(self) -> None:
        saved = torch.load(self._file, map_location="cpu", weights_only=True)
        for key, entry in saved.items():
            path = Path(key)
            try:
                fresh = self._stat(path) == entry["stat"].tolist()
            except OSError:
                fresh = False
            if fresh:
                self._pooled[path] = entry["pooled"]
                if "act" in entry:
                    self._activations[path] = entry["act"]

    def _save(self) -> None:
        entries = {}
        for path, pooled in self._pooled.items():
            entry = {"stat": torch.tensor(self._stat(path)), "pooled": pooled}
            if path in self._activations:
                entry["act"] = self._activations[path]
            entries[str(path)] = entry
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        torch.save(entries, tmp)
        os.replace(tmp, self._file)

    def features(self, items: list[LabeledImage]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``([N, 2, D_frozen], [N, 2, C, h, w] or None)`` for ``items``, computing new ones."""
        keys = [i.path.resolve() for i in items]  # one entry per file, however it is named
        missing = [k for k in keys if k not in self._pooled]
        # the same list on every rank, whatever each one found in its store
        missing = list(dict.fromkeys(k for part in distributed.gather(missing) for k in part))
        if missing:
            self._compute(missing)
        pooled = torch.stack([self._pooled[k] for k in keys])
        if self.frozen_stages == len(STAGES):
            return pooled, None
        return pooled, torch.stack([self._activations[k] for k in keys])

    def _compute(self, paths: list[Path]) -> None:
        """Each rank runs the backbone on its share of ``paths``; then all have them all."""
        share = self._run(paths[distributed.rank()::distributed.world_size()])
        for part in distributed.gather(share):
            for path, (pooled, act) in part.items():
                self._pooled[path] = pooled
                if act is not None:
                    self._activations[path] = act
        if self._file is not None and distributed.is_main():
            self._save()

    @torch.inference_mode()
    def _run(self, paths: list[Path]) -> dict[Path, tuple[torch.Tensor, torch.Tensor | None]]:
        model, cfg = self.model, self.model.cfg
        dataset = ImageScoreDataset(
            [LabeledImage(p, 0.0) for p in paths], eval_transform(cfg), cfg.input_size
        )
        workers = default_workers(len(paths), self.batch_size) if self.workers is None else self.workers
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=workers,
                            pin_memory=self.device.type == "cuda")
        model.eval()
        done, entries = 0, {}
        bar = _progress(loader, self.silent, desc="backbone features", unit="batch")
        for images, _ in bar:
            n = len(images)
            images = images.to(self.device, non_blocking=True)
            views = torch.cat([images, images.flip(3)])  # [2B, 3, H, W]
            with _autocast(self.device):
                act, pooled = model.run_stages(model.stem(views), 0, self.frozen_stages)
            pooled = torch.cat(pooled, dim=1).float().view(2, n, -1).transpose(0, 1)  # [B, 2, D]
            pooled = pooled.half().cpu()
            act = act.half().view(2, n, *act.shape[1:]).transpose(0, 1).cpu()  # [B, 2, C, h, w]
            partial = self.frozen_stages < len(STAGES)
            for k in range(n):
                entries[paths[done + k]] = (pooled[k].clone(), act[k].clone() if partial else None)
            done += n
        return entries


def _autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=device.type == "cuda")


def cached_activation_bytes(model: VNet, n_images: int, frozen_stages: int) -> int:
    """Memory a :class:`FeatureBank` needs for ``n_images`` (two fp16 views each)."""
    if frozen_stages == len(STAGES):
        return n_images * 2 * 2 * sum(model.block_channels)
    was_training = model.training
    model.eval()  # a probe in training mode would move the batch-norm running statistics
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            probe = torch.zeros(1, 3, model.cfg.input_size, model.cfg.input_size, device=device)
            act, _ = model.run_stages(model.stem(probe), 0, frozen_stages)
    finally:
        model.train(was_training)
    return n_images * 2 * 2 * (act[0].numel() + sum(model.block_channels))


class _CachedNet(nn.Module):
    """The trainable stages (if any) and the head, on cached frozen activations."""

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
        return self.model.head(pooled)


_VIEW_SEED_OFFSET = 1 << 31  # mirror choices independent of the sampler's permutation


class CachedPrefix:
    """Train on :class:`FeatureBank` entries: trainable stages (if any), then the head.

    ``batch_size`` is per process; ``net`` is what DDP wraps.
    """

    def __init__(self, model: VNet, bank: FeatureBank, splits: Splits, batch_size: int,
                 seed: int = 0):
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        n_frozen_blocks = sum(len(getattr(model.backbone, s)) for s in STAGES[:bank.frozen_stages])
        self.net = _CachedNet(model, bank.frozen_stages, model.block_channels[:n_frozen_blocks])
        self.train_pooled, self.train_act = bank.features(splits.train)
        self.train_y = torch.tensor([i.score for i in splits.train])
        self._bank = bank

    def predict(self, x: tuple[torch.Tensor, torch.Tensor | None],
                net: nn.Module | None = None) -> torch.Tensor:
        pooled_frozen, act = x
        device = self.model.primary_head.regressor.weight.device
        act = None if act is None else act.to(device).float()
        return (net or self.net)(pooled_frozen.to(device).float(), act)

    def _select(self, pooled, act, idx, views):
        return pooled[idx, views], None if act is None else act[idx, views]

    def sampler(self) -> Sampler:
        return distributed.sampler(len(self.train_y), shuffle=True, seed=self.seed)

    def train_batches(self, epoch: int):
        """This process's batches of one epoch, each with a random mirror choice per image."""
        sampler = self.sampler()
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        views = torch.randint(0, 2, (len(self.train_y),), generator=torch.Generator().manual_seed(
            _VIEW_SEED_OFFSET + self.seed + epoch))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self._select(self.train_pooled, self.train_act, idx, views[idx]), self.train_y[idx]

    def eval_batches(self, items: list[LabeledImage]):
        pooled, act = self._bank.features(items)
        y = torch.tensor([i.score for i in items])
        step = self.batch_size * 4
        for start in range(0, len(y), step):
            idx = torch.arange(start, min(start + step, len(y)))
            yield self._select(pooled, act, idx, torch.zeros_like(idx)), y[idx]


class FullImages:
    """Fine-tuning path: augmented images through the whole network."""

    def __init__(self, model: VNet, splits: Splits, batch_size: int, workers: int | None,
                 device: torch.device, seed: int = 0):
        self.model = model
        self.net = model
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.workers = default_workers(len(splits.train), batch_size) if workers is None else workers
        cfg = model.cfg
        self._train = ImageScoreDataset(splits.train, train_transform(cfg), cfg.input_size)

    def predict(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        with _autocast(self.device):
            return (net or self.net)(x.to(self.device, non_blocking=True)).float()

    def _loader(self, dataset, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.workers, pin_memory=self.device.type == "cuda",
                          drop_last=sampler is not None and len(sampler) > self.batch_size)

    def train_batches(self, epoch: int) -> DataLoader:
        sampler = distributed.sampler(len(self._train), shuffle=True, seed=self.seed)
        sampler.set_epoch(epoch)
        return self._loader(self._train, sampler)

    def eval_batches(self, items: list[LabeledImage]):
        cfg = self.model.cfg
        return self._loader(ImageScoreDataset(items, eval_transform(cfg), cfg.input_size))


def predict_targets(path_impl, items: list[LabeledImage]) -> tuple[list[float], list[float]]:
    """Predictions and targets for ``items`` in order (model in eval mode).

    Each process predicts its share; every process gets all predictions back.
    """
    model = path_impl.model
    was_training = model.training
    model.eval()
    share = list(distributed.sampler(len(items), shuffle=False))
    preds = []
    with torch.inference_mode():
        for x, _ in path_impl.eval_batches([items[i] for i in share]):
            preds.extend(path_impl.predict(x).cpu().tolist())
    model.train(was_training)
    return distributed.gather_by_index(share, preds, len(items)), [i.score for i in items]


def _trainable(model: VNet) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _steps_per_epoch(path_impl) -> int:
    if isinstance(path_impl, CachedPrefix):
        return math.ceil(len(path_impl.sampler()) / path_impl.batch_size)
    return len(path_impl.train_batches(0))


def _saved_run(out: Path) -> dict | None:
    """What ``--resume`` continues from: optimiser and schedule state, last epoch's weights."""
    state_file = out / "train_state.pt"
    if not state_file.is_file():
        return None
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    state["model"] = load_checkpoint(out / "last.pt").model.state_dict()
    return state


class RunLog:
    """Per-epoch metrics as JSON lines and CSV in the run folder."""

    FIELDS = ("epoch", "train_loss", "val_rho", "val_mse", "lr", "seconds")

    def __init__(self, out: Path, resume: bool):
        self.jsonl = out / "metrics.jsonl"
        self.csv = out / "metrics.csv"
        if not resume:
            self.jsonl.unlink(missing_ok=True)
            with open(self.csv, "w", newline="") as f:
                csv.writer(f).writerow(self.FIELDS)

    def write(self, row: dict) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        with open(self.csv, "a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in self.FIELDS])


CACHE_BUDGET_BYTES = 8 << 30


def use_cached_activations(model: VNet, splits: Splits, train_stages: int,
                           device: torch.device) -> bool:
    """Whether to train on cached frozen activations instead of augmented images.

    Always with a frozen backbone. When stages train too, only on a CPU (where recomputing
    the frozen stages every epoch is what makes fine-tuning slow) and when the cache fits in
    ``CACHE_BUDGET_BYTES``; a GPU gets the random-crop augmentation of the full path.
    """
    if train_stages == 0:
        return True
    n = len(splits.train) + len(splits.val) + len(splits.test or [])
    frozen = len(STAGES) - train_stages
    return device.type == "cpu" and cached_activation_bytes(model, n, frozen) <= CACHE_BUDGET_BYTES


def training_path(model: VNet, splits: Splits, train_stages: int, device: torch.device,
                  batch_size: int, workers: int | None, seed: int, silent: bool,
                  bank: FeatureBank | None = None, feature_store: Path | None = None
                  ) -> CachedPrefix | FullImages:
    """How ``model`` (its last ``train_stages`` stages unfrozen) meets the training images.

    Cached activations of the frozen stages when :func:`use_cached_activations` says so
    (``bank`` is reused when its frozen stages match), else augmented images through the
    whole network. ``batch_size`` is the global batch, split between processes.
    """
    frozen = len(STAGES) - train_stages
    if bank is None or bank.frozen_stages != frozen:
        bank = (FeatureBank(model, device, batch_size, workers, silent, frozen, feature_store)
                if use_cached_activations(model, splits, train_stages, device) else None)
    local = distributed.local_batch_size(batch_size)
    if bank is not None:
        return CachedPrefix(model, bank, splits, local, seed)
    return FullImages(model, splits, local, workers, device, seed)


def _start_at_mean(model: VNet, splits: Splits) -> None:
    """Set the regressor's bias to the mean training score (a sane first prediction)."""
    with torch.no_grad():
        model.primary_head.regressor.bias.fill_(sum(i.score for i in splits.train) / len(splits.train))


def fit(
    model: VNet,
    splits: Splits,
    out: Path,
    tcfg: TrainConfig,
    device: torch.device,
    meta: dict,
    bank: FeatureBank | None = None,
    resume: bool = False,
    silent: bool = False,
    echo: Callable[[str], None] = print,
    feature_store: Path | None = None,
) -> dict:
    """Train one fold, keeping ``best.pt`` (by validation rho) and ``last.pt`` in ``out``.

    ``bank`` (shared across folds of one run) is used when its frozen stages match; the
    backbone's frozen part must be the same as ``model``'s.

    Returns the best epoch's validation metrics and, when the fold has a test split, the
    best model's test metrics.

    Under torchrun every process calls it alike; ``tcfg.batch_size`` is the global batch,
    split between them, and only rank 0 writes ``out`` and calls ``echo``.
    """
    main = distributed.is_main()
    echo = echo if main else (lambda _: None)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(tcfg.seed)
    model.to(device)
    model.freeze_backbone(tcfg.train_stages)
    impl = training_path(model, splits, tcfg.train_stages, device, tcfg.batch_size,
                         tcfg.workers, tcfg.seed, silent, bank, feature_store)

    optimizer = torch.optim.Adam(_trainable(model), lr=tcfg.lr_max, weight_decay=tcfg.weight_decay)
    total = tcfg.epochs * _steps_per_epoch(impl)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: one_cycle_factor(s, total, tcfg.div, tcfg.final_div, tcfg.cycle_frac)
    )
    start_epoch, best = 1, {"val_rho": -math.inf}
    state = distributed.from_main(lambda: _saved_run(out)) if resume else None
    if state is not None:
        if state["total_steps"] != total:
            raise MemoError(f"{out}: cannot resume, the run's length or batch size changed")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        echo(f"resuming {out} at epoch {start_epoch}")
    elif not meta.get("init"):
        _start_at_mean(model, splits)

    net = distributed.wrap(impl.net, device)
    if main:
        run_log = RunLog(out, resume=start_epoch > 1)
        (out / "config.json").write_text(json.dumps(
            {"train": asdict(tcfg), "model": model.cfg.to_dict(), **meta,
             "data": splits.describe(), "processes": distributed.world_size()},
            indent=2,
        ))
    ckpt_meta = {**meta, "train_data": splits.describe(), "training": asdict(tcfg)}
    loss_fn = nn.MSELoss()
    for epoch in range(start_epoch, tcfg.epochs + 1):
        started = time.perf_counter()
        model.train()
        losses = []
        bar = _progress(impl.train_batches(epoch), silent, desc=f"epoch {epoch}/{tcfg.epochs}",
                        unit="batch", total=_steps_per_epoch(impl))
        for x, y in bar:
            pred = impl.predict(x, net)
            loss = loss_fn(pred, y.to(pred.device, dtype=pred.dtype))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.4f}")
        val = regression_metrics(*predict_targets(impl, splits.val))
        train_loss = statistics.fmean(distributed.gather(statistics.fmean(losses)))
        row = {
            "epoch": epoch, "train_loss": train_loss, "val_rho": val["rho"],
            "val_mse": val["mse"], "lr": scheduler.get_last_lr()[0],
            "seconds": round(time.perf_counter() - started, 2),
        }
        echo(f"epoch {epoch:>3}  loss {row['train_loss']:.4f}  val rho {val['rho']:.4f}"
             f"  val mse {val['mse']:.4f}  ({row['seconds']:.1f}s)")
        metrics = {"epoch": epoch, "val_rho": val["rho"], "val_mse": val["mse"], "val_n": val["n"]}
        improved = val["rho"] > best["val_rho"]
        if improved:
            best = metrics
        if main:
            run_log.write(row)
            if improved:
                save_checkpoint(out / "best.pt", model, metrics=metrics, **ckpt_meta)
            save_checkpoint(out / "last.pt", model, metrics=metrics, **ckpt_meta)
            torch.save({"epoch": epoch, "best": best, "total_steps": total,
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                       out / "train_state.pt")

    if not distributed.from_main((out / "best.pt").is_file):
        raise MemoError(f"{out}: no epoch was trained (epochs={tcfg.epochs})")
    result = dict(best)
    if splits.test:
        model.load_state_dict(distributed.from_main(
            lambda: load_checkpoint(out / "best.pt").model.state_dict()))
        model.to(device)
        test = regression_metrics(*predict_targets(impl, splits.test))
        result.update(test_rho=test["rho"], test_mse=test["mse"], test_n=test["n"])
        if main:
            save_checkpoint(out / "best.pt", model, metrics=result, **ckpt_meta)
    return result


def lr_range_test(
    model: VNet,
    splits: Splits,
    device: torch.device,
    batch_size: int = 32,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 300,
    weight_decay: float = 1e-4,
    bank: FeatureBank | None = None,
    silent: bool = False,
    train_stages: int = 0,
    workers: int | None = None,
    feature_store: Path | None = None,
) -> dict:
    """LR range test: raise the LR exponentially each step, training what ``memo train``
    with the same ``train_stages`` would train, the same way (:func:`training_path`).

    Returns the tried ``lrs``, the smoothed ``losses`` and :func:`suggest_lr`'s picks.
    Stops early once the loss exceeds 4x its best (divergence).
    """
    model.to(device)
    model.freeze_backbone(train_stages)
    impl = training_path(model, splits, train_stages, device, batch_size, workers, 0, silent,
                         bank, feature_store)
    _start_at_mean(model, splits)
    optimizer = torch.optim.Adam(_trainable(model), lr=start_lr, weight_decay=weight_decay)
    gamma = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    lrs, raw = [], []
    model.train()

    def batches():
        for epoch in itertools.count():
            yield from impl.train_batches(epoch)

    bar = _progress(range(steps), silent, desc="lr range test", unit="step")
    for step, (x, y) in zip(bar, batches()):
        lr = start_lr * gamma**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = nn.functional.mse_loss(impl.predict(x), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lrs.append(lr)
        raw.append(loss.item())
        smoothed = smooth(raw)
        if not math.isfinite(raw[-1]) or (step > 10 and smoothed[-1] > 4 * min(smoothed)):
            break
    losses = smooth(raw)
    return {"lrs": lrs, "losses": losses, **suggest_lr(lrs, losses)}

