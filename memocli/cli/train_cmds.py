"""``memo train``, ``memo evaluate`` and ``memo lr-find``."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import click

from ..errors import MemoError
from ..escape import csv_writer
from .options import (
    batch_options,
    device_option,
    echo_err,
    model_option,
    precision_option,
    silent_option,
    WEIGHTS_HELP,
    WeightsType,
)


def parse_folds(text: str) -> list[int]:
    """``'1-5'`` -> [1, 2, 3, 4, 5]; ``'1,3'`` -> [1, 3]; ``'2'`` -> [2]."""
    folds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                folds.extend(range(lo, hi + 1))
            else:
                folds.append(int(part))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a fold list like 1-5 or 1,3") from None
    if not folds or min(folds) < 1:
        raise click.BadParameter(f"'{text}' names no valid fold (folds start at 1)")
    return list(dict.fromkeys(folds))


def _train_stages_option(f):
    return click.option(
        "--train-stages", type=click.IntRange(0, 4), default=0, show_default=True,
        help="Unfreeze the last K ResNet stages (0: train the head on cached backbone "
             "features, fast on a CPU).")(f)


def _init_options(f):
    f = click.option(
        "--feature-cache", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
        help="Keep the frozen backbone's activations in DIR and reuse them in later runs "
             "with the same backbone (repeat experiments in seconds).")(f)
    f = click.option("--init", type=click.Path(dir_okay=False),
                     help="Fine-tune from this memo checkpoint.")(f)
    return click.option(
        "--backbone-weights", metavar="PATH|imagenet",
        help="Backbone initialisation: a torchvision-format ResNet state dict or memo "
             "backbone file, or 'imagenet' to download torchvision's weights.",
    )(f)


def _load_fold(data: str, fold: int):
    """A fold's train and val splits, and its test split when the dataset has one."""
    from ..data import DatasetError, load_split, split_names
    from ..train import Splits

    names = split_names(fold)
    train = load_split(data, names["train"])
    val = load_split(data, names["val"])
    test = None
    try:
        test = load_split(data, names["test"])
    except DatasetError:
        raise
    except MemoError:  # no test split: train and validate only
        pass
    return Splits(str(data), train, val, test,
                  (names["train"], names["val"], names["test"] if test else None))


@click.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("--fold", type=click.IntRange(min=1), default=None,
              help="Train this fold (splits train_K/val_K/test_K) [default: 1].")
@click.option("--folds", "folds_text", metavar="LIST",
              help="Train several folds, e.g. 1-5; prints mean ± sd over folds.")
@click.option("-o", "--out", type=click.Path(file_okay=False), required=True,
              help="Run folder: best.pt, last.pt, metrics.csv/jsonl, config.json.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--lr-max", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate of the one-cycle policy [default: from an LR range test].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=1e-4, show_default=True)
@_train_stages_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@model_option
@_init_options
@batch_options()
@device_option
@silent_option
def train(data, fold, folds_text, out, epochs, lr_max, weight_decay, train_stages, seed,
          resume, model_name, backbone_weights, init, feature_cache, batch_size, workers, device,
          silent):
    """Train V-Net on a LaMem-layout folder or a CSV manifest.

    DATA is a folder with images/ and splits/{train,val,test}_K.txt (lines "name score"),
    or a CSV with columns path,score,split. Adam + weight decay with the paper's one-cycle
    learning-rate policy; validation Spearman rho and MSE after every epoch.

    Under torchrun it trains on every process with DistributedDataParallel (NCCL, one GPU
    each; gloo on CPUs); --batch-size stays the global batch (see docs/scaling.md).

    \b
    Examples:
      memo train lamem/ --fold 1 --epochs 10 --out runs/f1 --backbone-weights r50.pt
      memo train lamem/ --folds 1-5 --out runs/lamem --backbone-weights imagenet
      memo train lamem/ --fold 1 --out runs/f1 --resume
      torchrun --nproc_per_node=8 -m memocli train lamem/ --folds 1-5 --out runs/lamem
    """
    from .. import distributed
    from ..backbones import initial_model
    from ..device import pick_device
    from ..train import (
        FeatureBank,
        TrainConfig,
        fit,
        lr_range_test,
        seed_everything,
        use_cached_activations,
    )

    if fold is not None and folds_text:
        raise click.UsageError("use --fold or --folds, not both")
    folds = parse_folds(folds_text) if folds_text else [fold or 1]
    dev = distributed.init(pick_device(device))
    click.get_current_context().call_on_close(distributed.cleanup)
    say = echo_err if distributed.is_main() else (lambda _: None)
    out = Path(out)
    splits_by_fold = {k: _load_fold(data, k) for k in folds}  # validate everything first
    results = {}
    bank = None
    frozen_stages = 4 - train_stages

    def fresh_model(warn=lambda _: None):
        seed_everything(seed)  # one random backbone for every fold and process
        return initial_model(model_name, backbone_weights, init, warn=warn)

    for k in folds:
        model, meta = fresh_model(say if k == folds[0] else lambda _: None)
        if bank is None and use_cached_activations(model, splits_by_fold[k], train_stages, dev):
            bank = FeatureBank(model, dev, batch_size, workers, silent, frozen_stages,
                               feature_cache)
        peak = lr_max
        if peak is None:
            found = lr_range_test(model, splits_by_fold[k], dev, batch_size, bank=bank,
                                  silent=silent, train_stages=train_stages, workers=workers)
            peak = distributed.broadcast(found["suggested"])  # rank 0's pick for all
            say(f"fold {k}: LR range test suggests --lr-max {peak:.2g}")
            model, meta = fresh_model()
        tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr_max=peak,
                           weight_decay=weight_decay, train_stages=train_stages, seed=seed + k - 1,
                           workers=workers)
        fold_out = out / f"fold_{k}" if len(folds) > 1 else out
        processes = f" x {distributed.world_size()} processes" * (distributed.world_size() > 1)
        say(f"fold {k}: training on {len(splits_by_fold[k].train)} images, validating on "
            f"{len(splits_by_fold[k].val)} ({dev}{processes}) -> {fold_out}")
        results[k] = fit(model, splits_by_fold[k], fold_out, tcfg, dev, meta, bank=bank,
                         resume=resume, silent=silent, echo=echo_err)
        if distributed.is_main():
            click.echo(_fold_line(k, results[k]))
    if len(folds) > 1 and distributed.is_main():
        summary = _summarise(results)
        (out / "summary.json").write_text(json.dumps({"folds": results, "summary": summary},
                                                     indent=2))
        for name, (mean, sd) in summary.items():
            click.echo(f"{name}: {mean:.4f} ± {sd:.4f} over {len(folds)} folds")


def _fold_line(k: int, result: dict) -> str:
    line = (f"fold {k}: best epoch {result['epoch']}  val rho {result['val_rho']:.4f}"
            f"  val mse {result['val_mse']:.4f}")
    if "test_rho" in result:
        line += f"  test rho {result['test_rho']:.4f}  test mse {result['test_mse']:.4f}"
    return line


def _summarise(results: dict[int, dict]) -> dict[str, tuple[float, float]]:
    summary = {}
    for key in ("val_rho", "val_mse", "test_rho", "test_mse"):
        values = [r[key] for r in results.values() if key in r]
        if values:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[key] = (statistics.fmean(values), sd)
    return summary


@click.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("--split", default="test_1", show_default=True,
              help="Split to evaluate (a splits/NAME.txt, or a CSV split value).")
@click.option("-w", "--weights", type=WeightsType(), help=WEIGHTS_HELP)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
              help="Also write path,target,prediction per image.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@batch_options()
@device_option
@precision_option(default="fp32")
def evaluate(data, split, weights, csv_path, as_json, batch_size, workers, device, precision):
    """Spearman rho and MSE of a checkpoint on a labelled split.

    \b
    Example:
      memo evaluate lamem/ --split test_1 --weights runs/f1/best.pt --csv preds.csv
    """
    from ..data import load_split
    from ..files import default_weights_path
    from ..metrics import regression_metrics
    from ..predictor import Predictor

    items = load_split(data, split)
    predictor = Predictor.from_checkpoint(weights or default_weights_path(), device, precision)
    preds: dict[int, float] = {}
    for batch in predictor.iter_predictions([i.path for i in items], batch_size, workers):
        for index, reason in batch.failures:
            raise MemoError(f"{items[index].path}: {reason}")
        preds.update(zip(batch.indices, batch.scores))
    predictions = [preds[i] for i in range(len(items))]
    metrics = regression_metrics(predictions, [i.score for i in items])
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv_writer(f)
            writer.writerow(["path", "target", "prediction"])
            for item, pred in zip(items, predictions):
                writer.writerow([str(item.path), item.score, f"{pred:.6f}"])
    result = {"split": split, "model": predictor.model_id, **metrics}
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{split}: rho {metrics['rho']:.4f}  mse {metrics['mse']:.4f}"
                   f"  n {metrics['n']}  ({predictor.model_id})")


@click.command("lr-find")
@click.argument("data", type=click.Path(exists=True))
@click.option("--fold", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default="lr-find.png",
              show_default=True, help="PNG of smoothed loss against learning rate.")
@click.option("--steps", type=click.IntRange(min=10), default=300, show_default=True)
@click.option("--start-lr", type=float, default=1e-6, show_default=True)
@click.option("--end-lr", type=float, default=1.0, show_default=True)
@_train_stages_option
@model_option
@_init_options
@batch_options()
@device_option
@silent_option
def lr_find(data, fold, plot_path, steps, start_lr, end_lr, train_stages, model_name,
            backbone_weights, init, feature_cache, batch_size, workers, device, silent):
    """LR range test: suggest the one-cycle policy's maximum learning rate.

    Raises the learning rate exponentially over a few hundred mini-batches of the training
    split and watches the loss; the suggestion is a tenth of the LR where the smoothed loss
    is lowest. Pass it to `memo train --lr-max`, with the same --train-stages: the test
    trains what that run would train.

    \b
    Example:
      memo lr-find lamem/ --fold 1 --backbone-weights r50.pt --plot lr.png
      memo lr-find lamem/ --train-stages 1 --feature-cache feats/
    """
    from ..backbones import initial_model
    from ..device import pick_device
    from ..plot import plot_log_x
    from ..train import lr_range_test

    if not 0 < start_lr < end_lr:
        raise click.BadParameter("need 0 < --start-lr < --end-lr")
    splits = _load_fold(data, fold)
    dev = pick_device(device)
    model, _ = initial_model(model_name, backbone_weights, init, warn=echo_err)
    found = lr_range_test(model, splits, dev, batch_size, start_lr, end_lr, steps,
                          silent=silent, train_stages=train_stages, workers=workers,
                          feature_store=feature_cache)
    plot_log_x(plot_path, found["lrs"], found["losses"], "LR range test", "learning rate",
               "loss (smoothed)", marker_x=found["suggested"])
    echo_err(f"loss bottoms out at lr {found['min_loss_lr']:.3g}; steepest fall at "
             f"{found['steepest_lr']:.3g}; plot: {plot_path}")
    click.echo(f"suggested --lr-max {found['suggested']:.3g}")


COMMANDS = [train, evaluate, lr_find]
