#!/usr/bin/env python
"""Distillation targets: several teachers' scores of the same photos, each standardised
over those photos, averaged, as a split file ``memo train --data DIR:SPLIT`` reads.

A teacher's scores come from a ``memo export`` CSV (its ``raw_score`` column) or a split
file (``name score`` lines, as ``scripts/teacher_scores.py`` writes). Photos are matched by
file name; only the photos in FOLDER that every teacher scored get a target, written as
``0.6 + 0.1 * mean z`` (LNSIM's mean and about its spread: the head trained on it reads
hit-rate-like numbers; the mixer maps its scale anyway).

Usage (model II's scene source, weights/MODEL_CARD.md):
    python scripts/ensemble_targets.py data/scene/images data/scene/splits/ensemble.txt \\
        data/scene/r50.csv data/scene/r152.csv data/pool/splits/resmem.txt+data/lnsim-resmem.txt
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path


def read_scores(path: Path) -> dict[str, float]:
    """``{file name: score}`` from a memo export CSV or a split file."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return {Path(r["path"]).name: float(r["raw_score"]) for r in csv.DictReader(f)}
    scores = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            name, score = line.split()[:2]
            scores[name] = float(score)
    return scores


def standardised(scores: dict[str, float], names: list[str]) -> dict[str, float]:
    """Each of ``names``' scores as a z-score over ``names``."""
    values = [scores[n] for n in names]
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    return {n: (scores[n] - mean) / sd for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the photos to give targets")
    parser.add_argument("out", type=Path, help="split file to write")
    parser.add_argument("teachers", type=Path, nargs="+",
                        help="memo export CSVs or split files, one per teacher (files "
                             "naming the same teacher's scores of other photos may follow "
                             "with +: a.txt+b.txt)")
    args = parser.parse_args()
    teachers = []
    for spec in args.teachers:
        scores: dict[str, float] = {}
        for part in str(spec).split("+"):
            scores |= read_scores(Path(part))
        teachers.append(scores)
    names = sorted(p.name for p in args.folder.iterdir()
                   if all(p.name in t for t in teachers))
    zs = [standardised(t, names) for t in teachers]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(
        f"{n} {0.6 + 0.1 * statistics.fmean(z[n] for z in zs):.6f}\n" for n in names),
        encoding="utf-8")
    print(f"{len(names)} photos with all {len(teachers)} teachers' scores -> {args.out}")


if __name__ == "__main__":
    main()
