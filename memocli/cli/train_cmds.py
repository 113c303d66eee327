"""``memo train``, ``memo evaluate`` and ``memo lr-find``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import MemoError
from ..registry import AUGMENTATIONS, CONSISTENCY_VIEWS, MAX_INPUT_BLUR
from .options import (
    WEIGHTS_HELP,
    WeightsType,
    batch_options,
    device_option,
    echo_err,
    engine_option,
    model_option,
    precision_option,
    progress_for_stderr,
    silent_option,
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


def _recipe_options(f):
    """``--train-stages``, ``--augment``, ``--consistency`` (and its views) and
    ``--precision``: what trains, on which views of the images, in which dtype."""
    f = click.option(
        "--consistency-views", type=click.Choice(CONSISTENCY_VIEWS), default="independent",
        show_default=True,
        help="What --consistency compares. independent: two draws of --augment; nudged "
             "(with reframe): one reframe and the same frame with each edge moved by up to "
             "1.5% (mirrored alike), so only a few pixels' shift or crop is pulled together.")(f)
    f = click.option(
        "--consistency", type=click.FloatRange(min=0), default=0.0, show_default=True,
        metavar="W",
        help="With --augment crop or reframe: show two views of every image and add W times "
             "the squared difference of their scores to the loss, so that the augmentation "
             "moves scores less. Twice the work per step.")(f)
    f = click.option(
        "--precision", "train_precision", type=click.Choice(["auto", "fp32", "bf16"]),
        default="auto", show_default=True,
        help="auto: bf16 autocast on CUDA and on CPUs with native bf16 (AMX, AVX512-BF16; "
             "about 2.6x fp32's speed), fp32 elsewhere.")(f)
    f = click.option(
        "--augment", type=click.Choice(AUGMENTATIONS), default="flip", show_default=True,
        help="flip: each image or its mirror (served from cached activations, fast on a "
             "CPU); crop: also resize 1.14x and crop at random; reframe: also crop up to 5% "
             "off the width and the height at random, at scoring's scale (trains scores "
             "that small crops do not move). crop and reframe send images through the "
             "whole network every step.")(f)
    return click.option(
        "--train-stages", type=click.IntRange(0, 4), default=0, show_default=True,
        help="Unfreeze the last K ResNet stages (0: train the head only).")(f)


def _check_consistency(augment: str, consistency: float, views: str) -> None:
    if consistency and augment == "flip":
        raise click.UsageError("--consistency needs --augment crop or reframe (two views of "
                               "each image through the whole network)")
    if views == "nudged" and augment != "reframe":
        raise click.UsageError("--consistency-views nudged needs --augment reframe")


def _init_options(f):
    """``--backbone-weights``, ``--init``, ``--feature-cache`` and the low-passes: what the
    model to train starts from and is."""
    f = click.option(
        "--blur-strides/--no-blur-strides", default=None,
        help="Low-pass the input of every strided convolution of the residual stages "
             "(anti-aliasing, Zhang 2019: small crops move scores less; about 0.5% more "
             "compute) [default: as the starting model].")(f)
    f = click.option(
        "--input-blur", type=click.FloatRange(0, MAX_INPUT_BLUR), metavar="SIGMA",
        help="Low-pass the network's input by a Gaussian of SIGMA pixels before its "
             "strided first convolution (0: none) [default: as the starting model].")(f)
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


def _source_spec(ctx, param, values):
    """``--data`` values as SourceSpecs (a malformed one is a usage error)."""
    from ..sources import SourceSpec

    try:
        specs = [SourceSpec.parse(v) for v in values]
    except MemoError as e:
        raise click.BadParameter(str(e)) from None
    for spec in specs:
        if not Path(spec.data).exists():
            raise click.BadParameter(f"{spec.data}: no such folder or file")
    return specs


@click.command()
@click.argument("data", type=click.Path(exists=True), required=False)
@click.option("--data", "more_data", multiple=True, metavar="DIR[:SPLIT[:WEIGHT]]",
              callback=_source_spec,
              help="A (further) labelled source; repeat to train one head per source. SPLIT "
                   "picks splits/SPLIT_{train,val,test}_K.txt, or the one file "
                   "splits/SPLIT.txt cut by --val-frac; WEIGHT scales its loss [1].")
@click.option("--val-frac", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.2, show_default=True,
              help="Share of a one-file source (DIR:SPLIT) held out for validation; fold K "
                   "validates on the K-th such share.")
@click.option("--select-on", metavar="NAME",
              help="With several sources: the source whose validation rho picks the best "
                   "epoch [default: the first].")
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
@_recipe_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run in --out (on the same data only).")
@click.option("--force", is_flag=True,
              help="Train into --out even though it holds another run (overwriting it).")
@model_option
@_init_options
@batch_options()
@device_option
@silent_option
def train(data, more_data, val_frac, select_on, fold, folds_text, out, epochs, lr_max,
          weight_decay, train_stages, augment, consistency, consistency_views, train_precision,
          seed, resume, force, model_name, backbone_weights, init, input_blur, blur_strides,
          feature_cache, batch_size, workers, device, silent):
    """Train V-Net on a LaMem-layout folder or a CSV manifest, or on several at once.

    DATA is a folder with images/ and splits/{train,val,test}_K.txt (lines "name score"),
    or a CSV with columns path,score,split. Adam + weight decay with the paper's one-cycle
    learning-rate policy; validation Spearman rho and MSE after every epoch.

    With several sources (DATA and --data, or repeated --data) the model gets one head per
    source over the shared backbone, each trained on its own labels only and validated on
    its own split.

    Under torchrun it trains on every process with DistributedDataParallel (NCCL, one GPU
    each; gloo on CPUs); --batch-size stays the global batch, shared among the processes.

    \b
    Examples:
      memo train lamem/ --fold 1 --epochs 10 --out runs/f1
      memo train lamem/ --folds 1-5 --out runs/lamem --backbone-weights imagenet
      memo train lamem/ --fold 1 --out runs/f1 --resume
      memo train lnsim/ --data pool/:teacher:0.5 --out runs/two --init runs/f1/best.pt
      torchrun --nproc_per_node=8 -m memocli train lamem/ --folds 1-5 --out runs/lamem
    """
    from .. import distributed
    from ..backbones import initial_model
    from ..crossval import cross_validate, summarise
    from ..device import pick_device
    from ..features import FeatureBanks
    from ..precision import Precision
    from ..run_folder import check_run_folder, fold_dir
    from ..sources import SourceSpec, load_sources, source_names
    from ..train import TrainConfig

    if fold is not None and folds_text:
        raise click.UsageError("use --fold or --folds, not both")
    _check_consistency(augment, consistency, consistency_views)
    specs = ([SourceSpec(data)] if data else []) + list(more_data)
    if not specs:
        raise click.UsageError("give a dataset: DATA or --data DIR[:SPLIT[:WEIGHT]]")
    heads = tuple(source_names(specs))
    folds = parse_folds(folds_text) if folds_text else [fold or 1]
    dev = distributed.init(pick_device(device))
    click.get_current_context().call_on_close(distributed.cleanup)
    # every fold of every source is read and checked before anything trains
    data_by_fold = {k: load_sources(specs, k, val_frac, select_on) for k in folds}
    check_run_folder(Path(out), {fold_dir(Path(out), k, folds): data.describe()
                                 for k, data in data_by_fold.items()}, resume, force)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, weight_decay=weight_decay,
                       train_stages=train_stages, augment=augment, consistency=consistency,
                       consistency_views=consistency_views,
                       seed=seed, workers=workers,
                       precision=Precision.training(dev.type, train_precision).dtype)
    results = cross_validate(
        data_by_fold, Path(out),
        lambda warn: initial_model(model_name, backbone_weights, init, warn=warn, heads=heads,
                                   input_blur=input_blur, blur_strides=blur_strides),
        tcfg, lr_max, dev,
        FeatureBanks(dev, batch_size, workers, silent, feature_cache, tcfg.precision),
        resume=resume, silent=silent, echo=echo_err,
        on_fold=lambda k, result: click.echo(_fold_line(k, result, heads)))
    if len(folds) > 1 and distributed.is_main():
        for name, (mean, sd) in summarise(results).items():
            click.echo(f"{name}: {mean:.4f} ± {sd:.4f} over {len(folds)} folds")


def _fold_line(k: int, result: dict, heads: tuple[str, ...]) -> str:
    """A fold's best epoch and its metrics (each source's, with several)."""
    line = f"fold {k}: best epoch {result['epoch']}"
    for suffix, label in [("", "")] if len(heads) == 1 else [(f"_{h}", f"{h} ") for h in heads]:
        for split in ("val", "test"):
            if f"{split}_rho{suffix}" in result:
                line += (f"  {label}{split} rho {result[f'{split}_rho{suffix}']:.4f}"
                         f"  {split} mse {result[f'{split}_mse{suffix}']:.4f}")
    return line


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
@engine_option
@silent_option
def evaluate(data, split, weights, csv_path, as_json, batch_size, workers, device, precision,
             engine, silent):
    """Spearman rho and MSE of a checkpoint on a labelled split.

    \b
    Example:
      memo evaluate lamem/ --split test_1 --weights runs/f1/best.pt --csv preds.csv
    """
    from ..data import load_split
    from ..ensemble import load_predictor
    from ..evaluation import evaluate_split, write_predictions
    from ..files import check_output_file, default_weights_path

    if csv_path:
        check_output_file(csv_path)  # said now, not after the whole split
    items = load_split(data, split)
    predictor = load_predictor(weights or default_weights_path(), device, precision, engine)
    evaluation = evaluate_split(predictor, items, split, batch_size, workers,
                                progress_for_stderr(silent))
    if csv_path:
        write_predictions(evaluation, csv_path)
    metrics = evaluation.metrics
    if as_json:
        click.echo(json.dumps(evaluation.summary()))
    else:
        click.echo(f"{split}: rho {metrics['rho']:.4f}  mse {metrics['mse']:.4f}"
                   f"  n {metrics['n']}  ({evaluation.model_id})")


@click.command("lr-find")
@click.argument("data", type=click.Path(exists=True))
@click.option("--fold", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              default="runs/lr-find", show_default=True,
              help="Folder for lr-find.png, the smoothed loss against the learning rate.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the PNG here instead [default: OUT/lr-find.png].")
@click.option("--steps", type=click.IntRange(min=10), default=300, show_default=True)
@click.option("--start-lr", type=float, default=1e-6, show_default=True)
@click.option("--end-lr", type=float, default=1.0, show_default=True)
@_recipe_options
@model_option
@_init_options
@batch_options()
@device_option
@silent_option
def lr_find(data, fold, out, plot_path, steps, start_lr, end_lr, train_stages, augment,
            consistency, consistency_views, train_precision, model_name, backbone_weights, init,
            input_blur, blur_strides, feature_cache, batch_size, workers, device, silent):
    """LR range test: suggest the one-cycle policy's maximum learning rate.

    Raises the learning rate exponentially over a few hundred mini-batches of the training
    split and watches the loss; the suggestion is a tenth of the LR where the smoothed loss
    is lowest. Pass it to `memo train --lr-max`, with the same --train-stages and
    --augment: the test trains what that run would train.

    \b
    Example:
      memo lr-find lamem/ --fold 1 --out runs/lr
      memo lr-find lamem/ --train-stages 1 --feature-cache feats/ --plot lr.png
    """
    from ..backbones import initial_model
    from ..device import pick_device
    from ..features import FeatureBanks
    from ..files import check_output_file
    from ..lr_find import lr_range_test, plot_range_test
    from ..precision import Precision
    from ..sources import TrainingData, load_fold
    from ..train import TrainConfig

    if not 0 < start_lr < end_lr:
        raise click.BadParameter("need 0 < --start-lr < --end-lr")
    _check_consistency(augment, consistency, consistency_views)
    plot_path = plot_path or out / "lr-find.png"
    check_output_file(plot_path)  # said now, not after the test
    training = TrainingData.single(load_fold(data, fold))
    dev = pick_device(device)
    model, _ = initial_model(model_name, backbone_weights, init, warn=echo_err,
                             input_blur=input_blur, blur_strides=blur_strides)
    tcfg = TrainConfig(batch_size=batch_size, train_stages=train_stages, augment=augment,
                       consistency=consistency, consistency_views=consistency_views,
                       workers=workers,
                       precision=Precision.training(dev.type, train_precision).dtype)
    found = lr_range_test(model, training, dev, tcfg, start_lr, end_lr, steps,
                          FeatureBanks(dev, batch_size, workers, silent, feature_cache,
                                       tcfg.precision), silent)
    plot_range_test(plot_path, found)
    echo_err(f"loss bottoms out at lr {found['min_loss_lr']:.3g}; steepest fall at "
             f"{found['steepest_lr']:.3g}; plot: {plot_path}")
    click.echo(f"suggested --lr-max {found['suggested']:.3g}")


COMMANDS = [train, evaluate, lr_find]
