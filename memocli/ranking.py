"""Ranks and percentiles of scored photos.

Torch-free: ``memo score`` ranks cached scores without loading the model.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .score import ScoredFile


@dataclass(frozen=True)
class Ranked:
    """A scored photo's place in the scanned set (rank 1 = most memorable)."""

    rank: int
    percentile: float
    item: ScoredFile
    burst: int | None = None  # rank of the best frame of its burst (memocli.bursts)
    group: str | None = None  # its folder, day or kind under --group-by (memocli.selection)


def rank(files: Sequence[ScoredFile]) -> list[Ranked]:
    """Order by raw score, highest first (ties by path); percentile within the set.

    The percentile is the share of the *other* photos in the set that score lower, a tie
    counting as half lower (the mid-rank rule): 100 for the best, 0 for the worst, the same
    for equal scores (50 when all are equal), 100 for a set of one.
    """
    ordered = sorted(files, key=lambda f: (-f.raw_score, f.path))
    values = sorted(f.raw_score for f in files)
    n = len(files)
    ranked = []
    for i, f in enumerate(ordered, 1):
        lower = bisect.bisect_left(values, f.raw_score)
        ties = bisect.bisect_right(values, f.raw_score) - lower - 1  # others scoring the same
        pct = 100.0 if n == 1 else 100.0 * (lower + ties / 2) / (n - 1)
        ranked.append(Ranked(rank=i, percentile=pct, item=f))
    return ranked


def shown_percentile(pct: float, decimals: int) -> float:
    """``pct`` rounded to ``decimals`` places, but never up to 100 unless it is 100 (the
    top photo): 99.51 shows as 99, not as a second 100."""
    if pct >= 100.0:
        return 100.0
    return min(round(pct, decimals), 100.0 - 10.0 ** -decimals)


#: What the numbers mean, two lines, under every table and in the report: why a landscape's
#: score is lower than a plate of food's, and what Pct compares.
LEGEND_LINES = (
    "Score: the predicted share of people who would recognise the photo on a second viewing. "
    "Outdoor scenes are on LNSIM's scale (average about 0.60), other photos on LaMem's "
    "(about 0.79): open scenes are remembered less well than faces, food or objects, so "
    "compare scenes with scenes.",
    "Pct: the share of the other photos ranked here that score lower (100 = the best).",
)


def select(ranked: Sequence[Ranked], top: int | None, bottom: int | None) -> list[Ranked]:
    """The first ``top`` and last ``bottom`` (in rank order, no repeats); all if neither."""
    if top is None and bottom is None:
        return list(ranked)
    chosen: dict[int, Ranked] = {}
    if top:
        chosen.update((r.rank, r) for r in ranked[:top])
    if bottom:
        chosen.update((r.rank, r) for r in ranked[-bottom:])
    return [chosen[k] for k in sorted(chosen)]
