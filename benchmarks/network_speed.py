#!/usr/bin/env python
"""Checkpoint against checkpoint: photos/s of each network alone, same inputs, same engine.

For a change inside the network (a low-pass, a head) that should cost next to nothing: it
builds each checkpoint's Predictor (memo's engine and precision choice, or those given),
then times ``--batches`` batches of ``--batch-size`` network inputs per checkpoint,
alternating checkpoints for ``--rounds`` rounds so that a busy moment hits both, and prints
each round's photos/s, the median, and each checkpoint's median against the first's. No
decoding, cache or start-up: ``score_speed.py`` measures those.

Usage:
    python benchmarks/network_speed.py OLD.pt NEW.pt [--precision auto] [--engine auto]
                                       [--rounds 5] [--batches 10] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from memocli.catalog import resolve_weights
from memocli.machine import describe_cpu
from memocli.predictor import Predictor


def photos_per_second(predictor: Predictor, x: torch.Tensor, batches: int) -> float:
    started = time.perf_counter()
    for _ in range(batches):
        predictor.predict(x)
    return batches * len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="+", help="model names or checkpoints")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    predictors = [Predictor.from_checkpoint(resolve_weights(w), "cpu", args.precision,
                                            args.engine) for w in args.weights]
    size = predictors[0].model.cfg.input_size
    x = torch.rand(args.batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    for predictor in predictors:  # warm-up: conversion, first-call allocation
        predictor.predict(x)
    rates: list[list[float]] = [[] for _ in predictors]
    for _ in range(args.rounds):
        for predictor, rate in zip(predictors, rates):
            rate.append(photos_per_second(predictor, x, args.batches))
    first = statistics.median(rates[0])
    for name, predictor, rate in zip(args.weights, predictors, rates):
        median = statistics.median(rate)
        print(f"{name}: {predictor.engine} {predictor.dtype_name}, median {median:.1f} photos/s "
              f"({median / first:.3f}x the first); rounds: "
              + " ".join(f"{r:.1f}" for r in rate))
    print(f"batch {args.batch_size}, {args.batches} batches a round; CPU {describe_cpu()}")


if __name__ == "__main__":
    main()
