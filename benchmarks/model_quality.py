#!/usr/bin/env python
"""A model's quality figures for the model card: LNSIM's val and test splits (human scores)
and the pool's held-out fifth (Spearman with ResMem, overall and per source).

    python benchmarks/model_quality.py r50 runs/m2/mixed.pt \\
        --lnsim ../shared/datasets/lnsim --pool data/teacher1:resmem_heldout

Each model scores in float32 (memo evaluate's default). The pool split is a teacher file
from ``scripts/teacher_scores.py --held-out 0`` (``NAME_heldout.txt``); a photo's source is
the part of its name before the first ``_`` (``voc_00012.jpg``: voc).
"""

from __future__ import annotations

import argparse
import collections

from memocli.catalog import resolve_weights
from memocli.data import load_split
from memocli.ensemble import load_predictor
from memocli.evaluation import evaluate_split
from memocli.machine import describe_cpu
from memocli.metrics import regression_metrics


def by_source(evaluation) -> dict[str, float]:
    """Spearman rho of each source's photos (named ``source_NNNNN.jpg``)."""
    groups = collections.defaultdict(lambda: ([], []))
    for item, pred in zip(evaluation.items, evaluation.predictions, strict=True):
        pred_list, target_list = groups[item.path.name.split("_", 1)[0]]
        pred_list.append(pred)
        target_list.append(item.score)
    return {src: regression_metrics(p, t)["rho"] for src, (p, t) in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="+", help="model names or checkpoints")
    parser.add_argument("--lnsim", default="../shared/datasets/lnsim")
    parser.add_argument("--splits", nargs="+", default=["val_1", "test_1"])
    parser.add_argument("--pool", help="DIR:SPLIT of the pool's held-out teacher scores")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    print(f"# {describe_cpu()}")
    for weights in args.weights:
        predictor = load_predictor(resolve_weights(weights), "cpu", args.precision, "auto")
        line = [f"{weights}:"]
        for split in args.splits:
            m = evaluate_split(predictor, load_split(args.lnsim, split), split, 32, None).metrics
            line.append(f"{split} rho {m['rho']:.4f} mse {m['mse']:.4f}")
        if args.pool:
            folder, split = args.pool.rsplit(":", 1)
            evaluation = evaluate_split(predictor, load_split(folder, split), split, 32, None)
            per = by_source(evaluation)
            line.append(f"pool held-out rho {evaluation.metrics['rho']:.4f} (n "
                        f"{evaluation.metrics['n']}; " + ", ".join(
                            f"{s} {r:.3f}" for s, r in per.items()) + ")")
        print("  ".join(line), flush=True)


if __name__ == "__main__":
    main()
