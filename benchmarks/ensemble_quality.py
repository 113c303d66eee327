#!/usr/bin/env python
"""Spearman rho and MSE of an ensemble and of each of its members on labelled splits.

Each member scores the splits' photos through memo's scoring pipeline and cache (a member
scored before is read back, not run again), and the ensemble's score is the manifest's
combination of the members' (what ``--weights MANIFEST`` computes, checked by
``tests/test_ensemble.py``). Choose on validation splits only; a test split is printed for
the record.

Usage:
    python benchmarks/ensemble_quality.py ../shared/datasets/lnsim --splits val_1 test_1 \\
        [--manifest accurate] [--cache memo.db]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from memocli.cache import Cache
from memocli.catalog import resolve_weights
from memocli.data import load_split
from memocli.ensemble import member_path, read_manifest
from memocli.ensemble_fit import scores_of
from memocli.folders import default_cache_path
from memocli.metrics import regression_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a labelled dataset (LaMem layout or CSV)")
    parser.add_argument("--splits", nargs="+", default=["val_1"])
    parser.add_argument("--manifest", default="accurate", help="a name or a .json file")
    parser.add_argument("--cache", type=Path, default=None, help="[memo's default cache]")
    args = parser.parse_args()
    manifest_file = resolve_weights(args.manifest)
    manifest = read_manifest(manifest_file)
    with Cache(args.cache or default_cache_path()) as cache:
        for split in args.splits:
            items = load_split(args.data, split)
            paths, labels = [i.path for i in items], [i.score for i in items]
            each = [scores_of(cache, member_path(m, manifest_file), paths)
                    for m in manifest.members]
            rows = [(m.weights, s) for m, s in zip(manifest.members, each, strict=True)]
            rows.append((f"ensemble ({manifest_file.name})", manifest.combine(
                [torch.tensor(s) for s in each]).tolist()))
            for name, scores in rows:
                m = regression_metrics(scores, labels)
                print(f"{split}  {name:<32} rho {m['rho']:.4f}  mse {m['mse']:.4f}  n {m['n']}")


if __name__ == "__main__":
    main()
