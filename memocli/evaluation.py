"""``memo evaluate``: a checkpoint's predictions on a labelled split, and their metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .data import LabeledImage
from .errors import MemoError
from .escape import csv_writer
from .files import atomic_write
from .metrics import regression_metrics
from .predictor import Predictor
from .reporting import Progress


@dataclass
class Evaluation:
    """One split's labelled photos, the model's prediction for each, and the metrics."""

    split: str
    model_id: str
    items: list[LabeledImage]
    predictions: list[float]
    metrics: dict[str, Any]  # rho, mse, n (memocli.metrics.regression_metrics)

    def summary(self) -> dict[str, Any]:
        """``{"split", "model", **metrics}``: what ``memo evaluate --json`` prints."""
        return {"split": self.split, "model": self.model_id, **self.metrics}


def evaluate_split(predictor: Predictor, items: list[LabeledImage], split: str,
                   batch_size: int | None = None, workers: int | None = None,
                   progress: Progress | None = None) -> Evaluation:
    """Predict every photo of a split (:func:`memocli.data.load_split`'s ``items``) and
    compare with its label, advancing ``progress`` photo by photo.

    Raises:
        MemoError: a photo cannot be decoded: metrics over part of a split would mislead.
    """
    predicted: dict[int, float] = {}
    with (progress or Progress()).stage(len(items), f"evaluating {split}") as advance:
        for batch in predictor.iter_predictions([i.path for i in items], batch_size, workers):
            for index, reason in batch.failures:
                raise MemoError(f"{items[index].path}: {reason}")
            predicted.update(zip(batch.indices, batch.scores, strict=True))
            advance(len(batch.indices))
    predictions = [predicted[i] for i in range(len(items))]
    return Evaluation(split, predictor.model_id, items, predictions,
                      regression_metrics(predictions, [i.score for i in items]))


def write_predictions(evaluation: Evaluation, out: str | os.PathLike) -> None:
    """``path,target,prediction`` per photo, as CSV, written atomically to ``out``."""
    with atomic_write(out, "w", encoding="utf-8", newline="") as f:
        writer = csv_writer(f)
        writer.writerow(["path", "target", "prediction"])
        for item, prediction in zip(evaluation.items, evaluation.predictions, strict=True):
            writer.writerow([str(item.path), item.score, f"{prediction:.6f}"])
