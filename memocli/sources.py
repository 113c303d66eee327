"""What a training run learns from: one or more labelled sources, each with its own splits.

A :class:`Source` is one dataset's train/val(/test) examples for one fold, a name (its head's
name when there are several) and a loss weight. :class:`TrainingData` is the list of them a
run trains on, the first one being the primary source.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import DatasetError, LabeledImage, dataset_fingerprint, load_split, split_names
from .errors import MemoError


@dataclass
class Splits:
    """The labelled examples of one fold, and where they came from."""

    data: str
    train: list[LabeledImage]
    val: list[LabeledImage]
    test: list[LabeledImage] | None = None
    names: tuple[str, str, str | None] = ("train", "val", None)

    def describe(self) -> dict:
        """Plain-data description for checkpoint metadata."""
        parts = {"train": self.train, "val": self.val, "test": self.test or []}
        return {
            "data": self.data,
            "splits": dict(zip(("train", "val", "test"), self.names)),
            "sizes": {k: len(v) for k, v in parts.items()},
            "fingerprints": {k: dataset_fingerprint(v) for k, v in parts.items() if v},
        }


@dataclass
class Source:
    """One labelled dataset of a run: its splits for this fold, head name, loss weight."""

    name: str
    splits: Splits
    weight: float = 1.0


@dataclass
class TrainingData:
    """The sources of one fold; the first is the primary one."""

    sources: list[Source]
    select: int = 0  # the source whose validation rho picks the best epoch

    @classmethod
    def single(cls, splits: Splits) -> TrainingData:
        """One source, trained like a plain ``memo train DATA``."""
        return cls([Source("score", splits)])

    @property
    def train(self) -> list[LabeledImage]:
        """Every source's training examples, source after source."""
        return [item for s in self.sources for item in s.splits.train]

    def train_sources(self) -> torch.Tensor:
        """The source index of each of :attr:`train`'s examples."""
        return torch.tensor([k for k, s in enumerate(self.sources) for _ in s.splits.train],
                            dtype=torch.long)

    def weights(self) -> torch.Tensor:
        """Each source's loss weight, in source order."""
        return torch.tensor([s.weight for s in self.sources])

    def n_images(self) -> int:
        """How many examples the run will ever feed (for the activation cache's size)."""
        return sum(len(s.splits.train) + len(s.splits.val) + len(s.splits.test or [])
                   for s in self.sources)

    def describe(self) -> dict:
        """Plain-data description for checkpoint metadata (the single source's, as before)."""
        if len(self.sources) == 1:
            return self.sources[0].splits.describe()
        return {"sources": [{"name": s.name, "weight": s.weight, **s.splits.describe()}
                            for s in self.sources]}

    def fingerprint(self) -> str:
        """A digest of every source's examples and weight: what ``--resume`` checks."""
        parts = [[s.name, s.weight, s.splits.describe()["fingerprints"]] for s in self.sources]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def load_fold(data: str, fold: int, prefix: str = "") -> Splits:
    """A fold's train and val splits, and its test split when the dataset has one.

    The split files are ``{prefix}train_K`` and so on.
    """
    names = {part: prefix + name for part, name in split_names(fold).items()}
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


@dataclass(frozen=True)
class SourceSpec:
    """One ``--data DIR[:SPLIT[:WEIGHT]]``: where a source is, which split files, its weight."""

    data: str
    split: str | None = None
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """``DIR``, ``DIR:SPLIT``, ``DIR:SPLIT:WEIGHT`` or ``DIR::WEIGHT``."""
        parts = text.split(":")
        if len(parts) > 3 or not parts[0]:
            raise MemoError(f"'{text}': expected DIR[:SPLIT[:WEIGHT]]")
        split = parts[1] if len(parts) > 1 and parts[1] else None
        weight = 1.0
        if len(parts) == 3:
            try:
                weight = float(parts[2])
            except ValueError:
                weight = math.nan
            if not (math.isfinite(weight) and weight > 0):
                raise MemoError(f"'{text}': the weight must be a positive number")
        return cls(parts[0], split, weight)

    @property
    def stem(self) -> str:
        """The dataset's own name: its folder's, or its CSV's without the suffix."""
        path = Path(self.data)
        return path.stem if path.suffix.lower() == ".csv" else path.resolve().name


def source_names(specs: list[SourceSpec]) -> list[str]:
    """One head name per source: the dataset's name, plus ``-SPLIT`` where two share it.

    A single source keeps the single head's usual name, ``score``.
    """
    if len(specs) == 1:
        return ["score"]
    stems = [re.sub(r"[^A-Za-z0-9_-]", "_", s.stem) or "data" for s in specs]
    names = [
        f"{stem}-{re.sub(r'[^A-Za-z0-9_-]', '_', spec.split)}"
        if stems.count(stem) > 1 and spec.split else stem
        for stem, spec in zip(stems, specs)
    ]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MemoError(f"two sources would both be named {repeated[0]!r}: give them "
                        "different folders or splits")
    return names


def holdout(items: list[LabeledImage], fold: int, val_frac: float, where: str
            ) -> tuple[list[LabeledImage], list[LabeledImage]]:
    """Fold ``fold``'s train and val parts of one unsplit list of examples.

    The examples are shuffled once with a fixed seed (not ``--seed``: the split must not
    move with it) and cut into parts of ``val_frac``; fold K validates on the K-th part,
    so folds 1..1/val_frac validate on disjoint parts. Both parts keep the file's order.
    """
    n_val = max(1, round(val_frac * len(items)))
    n_folds = len(items) // n_val
    if fold > n_folds or n_val >= len(items):
        raise MemoError(f"{where}: {len(items)} examples with --val-frac {val_frac:g} give "
                        f"{n_folds if n_val < len(items) else 0} fold(s), not fold {fold}")
    order = list(range(len(items)))
    random.Random(0).shuffle(order)
    val = set(order[(fold - 1) * n_val:fold * n_val])
    return ([item for i, item in enumerate(items) if i not in val],
            [item for i, item in enumerate(items) if i in val])


def load_source_splits(spec: SourceSpec, fold: int, val_frac: float) -> Splits:
    """Fold ``fold`` of one source (see docs/training.md, "Several sources").

    Without SPLIT: ``train_K``/``val_K``/``test_K`` as for one dataset. With SPLIT:
    ``SPLIT_train_K``/``SPLIT_val_K``(/``SPLIT_test_K``) when they exist, else the one file
    ``SPLIT`` cut into train and val by :func:`holdout`.
    """
    if spec.split is None:
        return load_fold(spec.data, fold)
    try:
        return load_fold(spec.data, fold, prefix=f"{spec.split}_")
    except DatasetError:
        raise
    except MemoError:
        pass
    items = load_split(spec.data, spec.split)
    train, val = holdout(items, fold, val_frac, f"{spec.data}:{spec.split}")
    return Splits(spec.data, train, val, None,
                  (f"{spec.split} (rest)", f"{spec.split} (part {fold} of {val_frac:g})", None))


def load_sources(specs: list[SourceSpec], fold: int, val_frac: float = 0.2,
                 select_on: str | None = None) -> TrainingData:
    """Every source's fold ``fold``, named by :func:`source_names`."""
    names = source_names(specs)
    sources = [Source(name, load_source_splits(spec, fold, val_frac), spec.weight)
               for name, spec in zip(names, specs)]
    if select_on is not None and select_on not in names:
        raise MemoError(f"--select-on {select_on}: no such source (sources: {', '.join(names)})")
    return TrainingData(sources, names.index(select_on) if select_on else 0)
