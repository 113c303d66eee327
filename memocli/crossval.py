"""Cross-validation: train fold after fold, each from the same initial model, and sum up."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from . import distributed
from .features import FeatureBanks
from .lr_find import LR_TEST_STEPS, lr_range_test, plot_range_test
from .model import VNet
from .run_folder import fold_dir
from .sources import TrainingData
from .train import TrainConfig, fit, seed_everything

#: Builds the model a fold starts from and its metadata; ``warn`` is where its warnings go.
ModelFactory = Callable[[Callable[[str], None]], tuple[VNet, dict]]


def summarise(results: dict[int, dict]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation over folds of every rho and MSE the folds report."""
    keys = dict.fromkeys(k for r in results.values() for k in r
                         if k.startswith(("val_rho", "val_mse", "test_rho", "test_mse")))
    summary = {}
    for key in keys:
        values = [r[key] for r in results.values() if key in r]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[key] = (statistics.fmean(values), sd)
    return summary


def cross_validate(
    data_by_fold: dict[int, TrainingData],
    out: Path,
    make_model: ModelFactory,
    tcfg: TrainConfig,
    lr_max: float | None,
    device: torch.device,
    banks: FeatureBanks,
    resume: bool = False,
    silent: bool = False,
    echo: Callable[[str], None] = print,
    on_fold: Callable[[int, dict], None] = lambda k, result: None,
) -> dict[int, dict]:
    """Train every fold of ``data_by_fold`` (in ``out/fold_K`` when there are several).

    Every fold starts from ``make_model`` under ``tcfg.seed`` (the same initial weights)
    and trains with seed ``tcfg.seed + K - 1``. Without ``lr_max`` an LR range test on the
    fold picks it. With several folds, ``out/summary.json`` holds every fold's metrics and
    their mean ± sd. ``on_fold`` is called with each fold's result as it finishes.
    """
    quiet = lambda _: None
    say = echo if distributed.is_main() else quiet
    folds = list(data_by_fold)
    results = {}
    for k in folds:
        data = data_by_fold[k]
        fold_cfg = replace(tcfg, seed=tcfg.seed + k - 1)
        seed_everything(tcfg.seed)  # one initial model for every fold and process
        model, meta = make_model(say if k == folds[0] else quiet)
        peak = lr_max
        fold_out = fold_dir(out, k, folds)
        if peak is None:
            epochs = LR_TEST_STEPS * fold_cfg.batch_size / max(1, len(data.train))
            say(f"fold {k}: no --lr-max, so an LR range test runs first: {LR_TEST_STEPS} "
                f"batches of {fold_cfg.batch_size}, about {epochs:.1f} epoch(s) of this "
                "run's training (pass --lr-max to skip it; 1e-4 suits fine-tuning)")
            found = lr_range_test(model, data, device, fold_cfg, steps=LR_TEST_STEPS,
                                  banks=banks, silent=silent)
            peak = distributed.broadcast(found["suggested"])  # rank 0's pick for all
            if distributed.is_main():
                fold_out.mkdir(parents=True, exist_ok=True)
                plot_range_test(fold_out / "lr-find.png", found)
            say(f"fold {k}: LR range test suggests --lr-max {peak:.2g} "
                f"(plot: {fold_out / 'lr-find.png'})")
            seed_everything(tcfg.seed)
            model, meta = make_model(quiet)
        processes = f" x {distributed.world_size()} processes" * (distributed.world_size() > 1)
        say(f"fold {k}: training on {len(data.train)} images, validating on "
            f"{sum(len(s.splits.val) for s in data.sources)} ({device}{processes}) -> {fold_out}")
        results[k] = fit(model, data, fold_out, replace(fold_cfg, lr_max=peak), device, meta,
                         banks=banks, resume=resume, silent=silent, echo=echo)
        if distributed.is_main():
            on_fold(k, results[k])
    if len(folds) > 1 and distributed.is_main():
        (out / "summary.json").write_text(json.dumps(
            {"folds": results, "summary": summarise(results)}, indent=2))
    return results
