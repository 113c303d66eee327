"""Training and evaluation of V-Net (paper §3.3-3.4): the fit loop of one fold.

:func:`fit` runs :func:`train_one_epoch` and :func:`evaluate` once per epoch, keeping the
best and the last checkpoint and a crash-consistent ``train_state.pt`` for ``--resume``.
How the images reach the model (cached activations or whole images) is a
:class:`~memocli.training_paths.TrainingPath`.

With several sources each has its own head, trained only on its own labels; each is
validated on its own split. Under ``torchrun`` (see :mod:`memocli.distributed`) every
process calls :func:`fit` alike: DistributedDataParallel averages the gradients, each
process takes its share of every global batch and of each evaluation, and rank 0 alone
writes the run folder.
"""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import MemoError
from .features import FeatureBanks, progress
from .files import atomic_write
from .metrics import regression_metrics
from .model import VNet
from .sources import TrainingData
from .training_paths import TrainingPath, training_path


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (stored in its checkpoints)."""

    epochs: int = 10
    batch_size: int = 32
    lr_max: float = 1e-3
    weight_decay: float = 1e-4
    div: float = 10.0
    final_div: float = 100.0
    cycle_frac: float = 0.9
    train_stages: int = 0
    augment: str = "flip"
    consistency: float = 0.0  # weight of the two views' squared score difference (0: one view)
    consistency_views: str = "independent"  # what the two views are (CONSISTENCY_VIEWS)
    seed: int = 0
    workers: int | None = None
    precision: str = "auto"  # Precision.training's dtype: fp32, bf16 or auto


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators."""
    random.seed(seed)
    torch.manual_seed(seed)


def trainable_parameters(model: VNet) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def prepare(model: VNet, data: TrainingData, tcfg: TrainConfig, device: torch.device,
            banks: FeatureBanks | None = None, silent: bool = False) -> TrainingPath:
    """Move ``model`` to ``device``, freeze all but its last ``train_stages`` stages and
    build the :class:`TrainingPath` it trains through."""
    names = [s.name for s in data.sources]
    if list(model.cfg.heads[:len(names)]) != names:
        raise MemoError(f"the model's heads {list(model.cfg.heads)} do not start with the "
                        f"sources {names}")
    model.to(device)
    model.freeze_backbone(tcfg.train_stages)
    for name in model.cfg.heads[len(names):]:  # kept from a fine-tuned model, no labels here
        model.heads[name].requires_grad_(False)
    if model.mixer is not None:  # heads train on their own labels; the mixer is fitted apart
        model.mixer.requires_grad_(False)
    banks = banks or FeatureBanks(device, tcfg.batch_size, tcfg.workers, silent,
                                  precision=tcfg.precision)
    return training_path(model, data.train, data.train_sources(), data.n_images(),
                         tcfg.train_stages, tcfg.augment, device, tcfg.batch_size,
                         tcfg.workers, tcfg.seed, banks, tcfg.precision,
                         pairs=tcfg.consistency_views if tcfg.consistency else None)


def start_at_means(model: VNet, data: TrainingData, heads: list[str] | None = None) -> None:
    """Set each head's regressor bias to its own source's mean training score (a sane first
    prediction); only the heads named in ``heads`` when given."""
    with torch.no_grad():
        for name, source in zip(model.cfg.heads, data.sources):
            if heads is None or name in heads:
                train = source.splits.train
                model.heads[name].regressor.bias.fill_(sum(i.score for i in train) / len(train))


def weighted_loss(pred: torch.Tensor, y: torch.Tensor, sources: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each example's own source's head, times that source's weight.

    ``pred`` is ``[B, K]`` (every head), ``y`` and ``sources`` ``[B]``.
    """
    own = pred.gather(1, sources[:, None].to(pred.device)).squeeze(1)
    err = (own - y.to(pred.device, dtype=pred.dtype)).square()
    return (weights.to(pred.device, dtype=pred.dtype)[sources.to(pred.device)] * err).mean()


def training_loss(pred: torch.Tensor, y: torch.Tensor, sources: torch.Tensor,
                  weights: torch.Tensor, consistency: float = 0.0) -> torch.Tensor:
    """:func:`weighted_loss` of a batch; for two views of each example (``pred`` is
    ``[B, 2, K]``) the mean of both views' plus ``consistency`` times the mean squared
    difference between the views' scores, every head's (what the augmentation moved)."""
    if pred.dim() == 2:
        return weighted_loss(pred, y, sources, weights)
    fit = (weighted_loss(pred[:, 0], y, sources, weights)
           + weighted_loss(pred[:, 1], y, sources, weights)) / 2
    return fit + consistency * (pred[:, 0] - pred[:, 1]).square().mean()


def train_one_epoch(path: TrainingPath, net: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, weights: torch.Tensor,
                    epoch: int, label: str = "", silent: bool = False,
                    consistency: float = 0.0) -> dict:
    """One pass over the training set: ``{'train_loss', 'lr'}``, the loss averaged over
    steps and ranks, the LR that of the epoch's last step."""
    path.model.train()
    losses = []
    bar = progress(path.train_batches(epoch), silent, desc=label or f"epoch {epoch}",
                   unit="batch", total=path.steps_per_epoch())
    for x, y, sources in bar:
        loss = training_loss(path.predict(x, net), y, sources, weights, consistency)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    train_loss = statistics.fmean(distributed.gather(statistics.fmean(losses)))
    return {"train_loss": train_loss, "lr": lr}


def predict_targets(path: TrainingPath, items, head: int = 0) -> tuple[list[float], list[float]]:
    """Head ``head``'s predictions and the targets for ``items`` in order (eval mode).

    Each process predicts its share; every process gets all predictions back.
    """
    model = path.model
    was_training = model.training
    model.eval()
    share = list(distributed.sampler(len(items), shuffle=False))
    preds = []
    with torch.inference_mode():
        for x in path.eval_batches([items[i] for i in share]):
            preds.extend(path.predict(x)[:, head].cpu().tolist())
    model.train(was_training)
    return distributed.gather_by_index(share, preds, len(items)), [i.score for i in items]


def evaluate(path: TrainingPath, data: TrainingData, split: str = "val") -> dict:
    """Spearman rho, MSE and count of each source's own head on its ``split``.

    Keys ``{split}_rho``, ``{split}_mse``, ``{split}_n`` are those of the source that picks
    the best epoch (``data.select``, by default the first); with
    several sources each also has ``{split}_rho_{name}`` and so on. Sources without that
    split are left out.
    """
    metrics: dict = {}
    for k, source in enumerate(data.sources):
        items = getattr(source.splits, split)
        if not items:
            continue
        m = regression_metrics(*predict_targets(path, items, k))
        named = {f"{split}_{key}": m[key] for key in ("rho", "mse", "n")}
        if k == data.select:
            metrics.update(named)
        if len(data.sources) > 1:
            metrics.update({f"{key}_{source.name}": value for key, value in named.items()})
    return metrics


def evaluate_keys(data: TrainingData, split: str) -> list[str]:
    """The rho and MSE keys :func:`evaluate` returns for ``split`` (the CSV's columns)."""
    suffixes = [""] + ([f"_{s.name}" for s in data.sources] if len(data.sources) > 1 else [])
    return [f"{split}_{key}{suffix}" for suffix in suffixes for key in ("rho", "mse")]


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, tcfg: TrainConfig
              ) -> torch.optim.lr_scheduler.OneCycleLR:
    """The paper's one-cycle learning-rate policy (§3.4.2) over ``total_steps`` steps.

    Over ``cycle_frac`` of the steps the LR climbs linearly from ``lr_max / div`` to
    ``lr_max`` and back down; over the rest it is annealed linearly to
    ``lr_max / final_div``. Adam's momentum is left alone.
    """
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=tcfg.lr_max, total_steps=total_steps, pct_start=tcfg.cycle_frac / 2,
        anneal_strategy="linear", cycle_momentum=False, div_factor=tcfg.div,
        final_div_factor=tcfg.final_div / tcfg.div, three_phase=True)


STATE_FILE = "train_state.pt"


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_run_state(out: Path, **state) -> None:
    """Write ``train_state.pt`` atomically: everything ``--resume`` needs, in one file."""
    with atomic_write(out / STATE_FILE) as f:
        torch.save({**state, "rng": _rng_state()}, f)


def load_run_state(out: Path) -> dict | None:
    """The state an interrupted run in ``out`` saved at its last finished epoch, if any."""
    state_file = out / STATE_FILE
    if not state_file.is_file():
        return None
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    if "model" not in state:
        raise MemoError(f"{state_file}: written by an older memo; cannot resume this run")
    return state


class RunLog:
    """Per-epoch metrics as JSON lines and CSV in the run folder.

    ``fields`` are the CSV columns. On resume, rows of epochs after ``resume_after`` (from a
    crash after the log was written but before the run state was) are dropped.
    """

    def __init__(self, out: Path, fields: list[str], resume_after: int = 0):
        self.jsonl = out / "metrics.jsonl"
        self.csv = out / "metrics.csv"
        self.fields = fields
        rows = []
        if resume_after and self.jsonl.is_file():
            rows = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line]
            rows = [r for r in rows if r["epoch"] <= resume_after]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with open(self.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(fields)
            writer.writerows([r.get(k, "") for k in fields] for r in rows)

    def write(self, row: dict) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        with open(self.csv, "a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in self.fields])


def epoch_line(epoch: int, row: dict, data: TrainingData) -> str:
    """The line printed after each epoch."""
    line = f"epoch {epoch:>3}  loss {row['train_loss']:.4f}"
    if len(data.sources) == 1:
        line += f"  val rho {row['val_rho']:.4f}  val mse {row['val_mse']:.4f}"
    else:
        for s in data.sources:
            line += f"  {s.name}: val rho {row[f'val_rho_{s.name}']:.4f}" \
                    f" mse {row[f'val_mse_{s.name}']:.4f}"
    return line + f"  ({row['seconds']:.1f}s)"


def fit(
    model: VNet,
    data: TrainingData,
    out: Path,
    tcfg: TrainConfig,
    device: torch.device,
    meta: dict,
    banks: FeatureBanks | None = None,
    resume: bool = False,
    silent: bool = False,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train one fold, keeping ``best.pt`` (by validation rho) and ``last.pt`` in ``out``.

    ``banks`` (shared by the folds of one run) holds the activation caches.
    Returns the best epoch's validation metrics and, when the sources have test splits, the
    best model's test metrics.

    Under torchrun every process calls it alike; ``tcfg.batch_size`` is the global batch,
    split between them, and only rank 0 writes ``out`` and calls ``echo``.
    """
    main = distributed.is_main()
    echo = echo if main else (lambda _: None)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(tcfg.seed)
    path = prepare(model, data, tcfg, device, banks, silent)
    kept = model.cfg.heads[len(data.sources):]
    if kept and tcfg.train_stages:
        echo(f"warning: --train-stages {tcfg.train_stages} retrains features that the kept "
             f"heads {', '.join(kept)} read, so photos unlike your data will score "
             "differently; --train-stages 0 keeps them exactly")
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=tcfg.lr_max,
                                 weight_decay=tcfg.weight_decay)
    total = tcfg.epochs * path.steps_per_epoch()
    scheduler = one_cycle(optimizer, total, tcfg)
    fingerprint = data.fingerprint()
    start_epoch, best = 1, {"val_rho": -math.inf}
    state = distributed.from_main(lambda: load_run_state(out)) if resume else None
    if state is not None:
        if state["total_steps"] != total:
            raise MemoError(f"{out}: cannot resume, the run's length or batch size changed")
        if state["data"] != fingerprint:
            raise MemoError(f"{out}: cannot resume, the training data changed")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        echo(f"resuming {out} at epoch {start_epoch}")
    else:
        start_at_means(model, data, None if not meta.get("init") else meta.get("new_heads", []))

    net = distributed.wrap(path.net, device)
    weights = data.weights()
    description = data.describe()
    val_keys = evaluate_keys(data, "val")
    if main:
        run_log = RunLog(out, ["epoch", "train_loss", *val_keys, "lr", "seconds"],
                         resume_after=start_epoch - 1)
        (out / "config.json").write_text(json.dumps(
            {"train": asdict(tcfg), "model": model.cfg.to_dict(), **meta,
             "data": description, "processes": distributed.world_size()},
            indent=2,
        ))
    ckpt_meta = {**meta, "train_data": description, "training": asdict(tcfg)}
    for epoch in range(start_epoch, tcfg.epochs + 1):
        started = time.perf_counter()
        trained = train_one_epoch(path, net, optimizer, scheduler, weights, epoch,
                                  f"epoch {epoch}/{tcfg.epochs}", silent, tcfg.consistency)
        val = evaluate(path, data, "val")
        row = {"epoch": epoch, "train_loss": trained["train_loss"],
               **{k: val[k] for k in val_keys}, "lr": trained["lr"],
               "seconds": round(time.perf_counter() - started, 2)}
        echo(epoch_line(epoch, row, data))
        metrics = {"epoch": epoch, **val}
        improved = val["val_rho"] > best["val_rho"]
        if improved:
            best = metrics
        if main:
            run_log.write(row)
            if improved:
                save_checkpoint(out / "best.pt", model, metrics=metrics, **ckpt_meta)
            save_checkpoint(out / "last.pt", model, metrics=metrics, **ckpt_meta)
            save_run_state(out, epoch=epoch, best=best, total_steps=total, data=fingerprint,
                           model=model.state_dict(), optimizer=optimizer.state_dict(),
                           scheduler=scheduler.state_dict())

    if not distributed.from_main((out / "best.pt").is_file):
        raise MemoError(f"{out}: no epoch was trained (epochs={tcfg.epochs})")
    result = dict(best)
    if any(s.splits.test for s in data.sources):
        model.load_state_dict(distributed.from_main(
            lambda: load_checkpoint(out / "best.pt").model.state_dict()))
        model.to(device)
        result.update(evaluate(path, data, "test"))
        if main:
            save_checkpoint(out / "best.pt", model, metrics=result, **ckpt_meta)
    return result

