#!/usr/bin/env python
"""Network speed of models side by side (the default, r152, the accurate ensemble): photos
per second of the forward pass, the photos decoded once beforehand, the models taking
turns batch set by batch set so a busy machine slows each alike. It prints the best round
(the least disturbed by other work on a shared machine) and the median.

Decoding, hashing and the cache are left out: they are the same for every model (an
ensemble decodes each photo once), so the ratio here is what the model changes.

Usage:
    python benchmarks/ensemble_speed.py [--weights r50 r152 accurate] [--limit 64]
                                        [--rounds 5] [--precision auto] [--engine auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from memocli.catalog import resolve_weights
from memocli.ensemble import load_predictor
from memocli.machine import describe_cpu

DEFAULT_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lnsim" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", default=["r50", "r152", "accurate"])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args()
    models = {w: load_predictor(resolve_weights(w), "cpu", args.precision, args.engine)
              for w in args.weights}
    first = next(iter(models.values()))
    paths = sorted(args.photos.iterdir())[:args.limit]
    inputs = torch.stack([first.net_input(first.load_photo(p)) for p in paths])
    batches = list(torch.split(inputs, args.batch_size))
    for predictor in models.values():
        predictor.predict(batches[0])  # warm-up: conversion, first-call costs
    rates: dict[str, list[float]] = {w: [] for w in models}
    for _ in range(args.rounds):
        for name, predictor in models.items():
            start = time.perf_counter()
            for batch in batches:
                predictor.predict(batch)
            rates[name].append(len(paths) / (time.perf_counter() - start))
    base = max(rates[args.weights[0]])
    print(f"CPU {describe_cpu()}; {len(paths)} photos, batches of {args.batch_size}, "
          f"{args.rounds} rounds, torch threads {torch.get_num_threads()}")
    for name, predictor in models.items():
        best = max(rates[name])
        print(f"{name:<10} {predictor.model_id:<46} best {best:6.1f} photos/s, median "
              f"{statistics.median(rates[name]):6.1f}  time x{base / best:.2f} of "
              f"{args.weights[0]} (best rounds)")


if __name__ == "__main__":
    main()
