"""Which ranked photos to show, beyond the N best: a diverse top N, and the top of each group.

``--diverse`` is greedy maximal marginal relevance (Carbonell & Goldstein, 1998) on the
feature vectors the cache keeps (the model's pooled last block, as bursts use): each pick
is the photo with the highest

    trade_off * memorability - (1 - trade_off) * (its similarity to the closest photo picked)

where memorability is the photo's percentile / 100 (so the trade-off does not depend on
how spread the scores are) and similarity is cosine. With the default trade-off
(:data:`DEFAULT_TRADE_OFF`) a photo must beat the next-best one by about 43 percentile
points per 1.0 of extra similarity to what is already shown. Ties go to the better rank,
so the order is deterministic. Photos without a feature vector count as unlike every
other photo.

``--group-by`` splits the ranking by folder, day taken or kind, and shows each group's best
photos; groups come in the order of their best photo.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ranking import Ranked

DEFAULT_TRADE_OFF = 0.7
#: How many photos ``--diverse`` orders when no ``--top`` limits it; the rest follow in
#: rank order (each pick compares every candidate with the last photo picked).
DEFAULT_DIVERSE_LIMIT = 100
#: The candidates: the best max(POOL_MIN, POOL_PER_PICK x picks) photos by rank.
POOL_MIN, POOL_PER_PICK = 1000, 5
GROUPINGS = ("folder", "day", "kind")


def diverse(ranked: Sequence[Ranked], limit: int | None = None,
            trade_off: float = DEFAULT_TRADE_OFF) -> list[Ranked]:
    """``ranked`` (best first) reordered so that its first ``limit`` photos are the greedy
    maximal-marginal-relevance picks; the others follow in rank order."""
    import numpy as np

    from .bursts import decode

    n = len(ranked)
    limit = min(n, limit or DEFAULT_DIVERSE_LIMIT)
    if n <= 1 or limit <= 1:
        return list(ranked)
    pool = min(n, max(POOL_MIN, POOL_PER_PICK * limit))  # candidates: the best ones
    vectors = [decode(r.item.features) for r in ranked[:pool]]
    dim = next((len(v) for v in vectors if v is not None), 1)
    matrix = np.stack([v if v is not None else np.zeros(dim, np.float32)
                       for v in vectors])  # [P, D]
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    merit = trade_off * np.array([r.percentile / 100 for r in ranked[:pool]])
    closest = np.zeros(pool)  # similarity to the closest photo picked so far
    free = np.ones(n, dtype=bool)
    order: list[int] = []
    for step in range(limit):
        value = merit - (1 - trade_off) * closest if step else merit.copy()
        value[~free[:pool]] = -np.inf
        pick = int(np.argmax(value))  # the first of equal values: the better rank
        order.append(pick)
        free[pick] = False
        closest = np.maximum(closest, matrix @ matrix[pick])
    return [ranked[i] for i in order] + [r for i, r in enumerate(ranked) if free[i]]


def arrange(ranked: Sequence[Ranked], top: int | None, bottom: int | None,
            diverse_on: bool = False, trade_off: float = DEFAULT_TRADE_OFF,
            group_by: str | None = None) -> list[Ranked]:
    """The rows to show: the top of each group (``group_by``), a diverse top (``diverse_on``),
    or :func:`~memocli.ranking.select`'s ``top``/``bottom``."""
    from .ranking import select

    if group_by:
        return grouped(ranked, group_by, top, trade_off if diverse_on else None)
    if diverse_on:
        return diverse(ranked, top, trade_off)[:top]
    return select(ranked, top, bottom)


def group_of(r: Ranked, by: str) -> str:
    """The group of a ranked photo: its folder, its day taken (``unknown day``) or its
    kind."""
    if by == "folder":
        return os.path.dirname(r.item.path) or "."
    if by == "day":
        return (r.item.meta.taken_at or "")[:10] or "unknown day"
    return r.item.meta.kind or "photo"


def grouped(ranked: Sequence[Ranked], by: str, per_group: int | None,
            trade_off: float | None = None) -> list[Ranked]:
    """The best ``per_group`` photos of each group (all when None), group after group in
    the order of their best photo, each row's ``group`` set; ``trade_off``: each group's
    rows in :func:`diverse` order."""
    groups: dict[str, list[Ranked]] = {}
    for r in ranked:
        groups.setdefault(group_of(r, by), []).append(r)
    rows: list[Ranked] = []
    for name, members in groups.items():
        if trade_off is not None:
            members = diverse(members, per_group, trade_off)
        rows += [replace(r, group=name) for r in members[:per_group]]
    return rows
