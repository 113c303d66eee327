#!/usr/bin/env python
"""Spearman rho and MSE of memo and of ResMem on the same labelled split.

ResMem (``pip install resmem``) is run exactly as its documentation shows:
``ResMem(pretrained=True)``, its own ``transformer``, one image at a time. This script
installs nothing; it is not part of ``make test``.

Usage:
    python benchmarks/compare_resmem.py [--data ../shared/datasets/lnsim] [--split test_1]
                                        [--weights weights/memo-vnet-r50.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

from memocli.data import load_split
from memocli.device import pick_device
from memocli.files import default_weights_path
from memocli.metrics import regression_metrics
from memocli.predictor import Predictor

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "lnsim"


def memo_predictions(weights: Path, paths: list[Path], device) -> list[float]:
    scores: dict[int, float] = {}
    for batch in Predictor.from_checkpoint(weights, device).iter_predictions(paths, 32):
        if batch.failures:
            raise SystemExit(f"cannot read {paths[batch.failures[0][0]]}: {batch.failures[0][1]}")
        scores.update(zip(batch.indices, batch.scores))
    return [scores[i] for i in range(len(paths))]


def resmem_predictions(paths: list[Path], device) -> list[float]:
    try:
        from resmem import ResMem, transformer
    except ImportError:
        raise SystemExit("ResMem is not installed: pip install resmem") from None
    model = ResMem(pretrained=True).to(device).eval()
    preds = []
    with torch.inference_mode():
        for path in paths:
            image = transformer(Image.open(path).convert("RGB"))
            preds.append(float(model(image.view(-1, 3, 227, 227).to(device)).item()))
    return preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test_1")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    items = load_split(args.data, args.split)
    paths, targets = [i.path for i in items], [i.score for i in items]
    weights = args.weights or default_weights_path()
    rows = []
    for name, predict in (("memo", lambda: memo_predictions(weights, paths, device)),
                          ("ResMem", lambda: resmem_predictions(paths, device))):
        started = time.perf_counter()
        metrics = regression_metrics(predict(), targets)
        rows.append((name, metrics, time.perf_counter() - started))
    print(f"{args.data.name} {args.split}: {len(items)} images, device {device}")
    print(f"{'model':<8} {'rho':>7} {'mse':>8} {'seconds':>8}")
    for name, m, seconds in rows:
        print(f"{name:<8} {m['rho']:>7.4f} {m['mse']:>8.4f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
