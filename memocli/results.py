"""What scoring a batch of photos gives, whichever engine ran it (torch-free)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import MemoError
from .files import printable

#: Photos per batch on a CPU: faster there than 32 (``docs/performance.md``).
CPU_BATCH_SIZE = 16


@dataclass
class BatchResult:
    """Scores and features for the decodable files of one batch; why the others failed.

    ``features[i]`` is :func:`embedding` of ``indices[i]``'s last backbone block.
    """

    indices: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    features: list[bytes] = field(default_factory=list)

    def refuse(self, which: Callable[[int], bool], reason: str) -> None:
        """Make the files whose index ``which`` says yes to failures for ``reason``, whether
        they were scored or failed."""
        indices = {i for i in [*self.indices, *(i for i, _ in self.failures)] if which(i)}
        if not indices:
            return
        kept = [row for row in zip(self.indices, self.scores, self.features, strict=True)
                if row[0] not in indices]
        self.indices, self.scores, self.features = ([row[k] for row in kept] for k in range(3))
        self.failures = [(i, r) for i, r in self.failures if i not in indices] + [
            (i, reason) for i in sorted(indices)]


def embedding(pooled: np.ndarray) -> list[bytes]:
    """L2-normalised pooled features ``[B, C]`` as little-endian float16 bytes, one per row."""
    pooled = np.asarray(pooled, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
    return [row.tobytes() for row in (pooled / norms).astype("<f2")]


def refuse_non_finite(result: BatchResult, paths: Sequence[str | os.PathLike],
                      checkpoint: str) -> None:
    """Raise when a score is NaN or infinite: the checkpoint is broken, and such a score
    must never be cached or ranked (the batch is refused whole)."""
    for index, score in zip(result.indices, result.scores, strict=True):
        if not math.isfinite(score):
            raise MemoError(
                f"checkpoint {checkpoint}: its score for {printable(paths[index])} is not "
                "finite (NaN or infinity); refused, nothing of it was saved")
