"""Which ranked photos to show, beyond the N best: a diverse top N, and the top of each group.

``--diverse`` is greedy maximal marginal relevance (Carbonell & Goldstein, 1998) on the
feature vectors the cache keeps (the model's pooled last block, as bursts use): each pick
is the photo with the highest

    trade_off * merit - (1 - trade_off) * (its similarity to the closest photo picked)

Merit is how memorable the photo is *among photos like it*: the share of its
:data:`NEIGHBOURS` most similar candidates that score lower. A global percentile would
never let an open landscape (people remember them less than food or faces, and the model's
scene scores sit on a lower scale) past a plate of food; this way the best photo of each
kind competes as the best. Similarity is cosine in the library's own main axes of
variation (the first :data:`AXES` principal axes of the candidates' centred features): the
raw 2,048-dimensional vectors hardly tell kinds apart (cosine 0.21 within landscapes, 0.16
between landscapes and other photos, in ``scripts/mixed_library.py``'s library), their main
axes do. Ties go to the better rank, so the order is deterministic. Photos without a
feature vector keep their global percentile as merit and count as unlike every other
photo.

``--group-by`` splits the ranking by folder, day taken or kind, and shows each group's best
photos; groups come in the order of their best photo.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .ranking import Ranked

DEFAULT_TRADE_OFF = 0.7
#: How many photos ``--diverse`` orders when no ``--top`` limits it; the rest follow in
#: rank order (each pick compares every candidate with the last photo picked).
DEFAULT_DIVERSE_LIMIT = 100
#: The candidates: the best max(POOL_MIN, POOL_PER_PICK x picks) photos by rank.
POOL_MIN, POOL_PER_PICK = 5000, 5
#: Main axes of the library's features that similarity is measured in, and how many of a
#: photo's most similar candidates its merit is measured against (chosen on the mixed
#: library: 6-8 axes and 10-25 neighbours each put 2-5 of its 35 landscapes in the top 20).
AXES, NEIGHBOURS = 8, 15
GROUPINGS = ("folder", "day", "kind")


def main_axes(vectors: np.ndarray, has: np.ndarray) -> np.ndarray:
    """``vectors`` [P, D] centred and projected on the first :data:`AXES` principal axes of
    the rows ``has`` marks, then L2-normalised (rows without a vector: zeros)."""
    import numpy as np

    centred = vectors - vectors[has].mean(0)
    _, _, axes = np.linalg.svd(centred[has], full_matrices=False)
    space = centred @ axes[:AXES].T
    space /= np.maximum(np.linalg.norm(space, axis=1, keepdims=True), 1e-12)
    space[~has] = 0
    return space.astype(np.float32)


def merit_among_alike(space: np.ndarray, has: np.ndarray, scores: np.ndarray,
                      percentiles: np.ndarray) -> np.ndarray:
    """Each candidate's share of its :data:`NEIGHBOURS` most similar candidates that score
    lower; a candidate without a vector keeps its global percentile (0-1)."""
    import numpy as np

    merit = percentiles.copy()
    rows = np.flatnonzero(has)
    k = min(NEIGHBOURS, len(rows) - 1)
    if k < 1:
        return merit
    for start in range(0, len(rows), 1000):  # [1000, P] similarities at a time
        chunk = rows[start:start + 1000]
        sims = space[chunk] @ space[rows].T
        sims[np.arange(len(chunk)), start + np.arange(len(chunk))] = -np.inf  # not itself
        alike = rows[np.argpartition(-sims, k - 1, axis=1)[:, :k]]
        merit[chunk] = (scores[alike] < scores[chunk, None]).mean(1)
    return merit


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
    has = np.array([v is not None for v in vectors])
    dim = next((len(v) for v in vectors if v is not None), 1)
    matrix = np.stack([v if v is not None else np.zeros(dim, np.float32) for v in vectors])
    percentiles = np.array([r.percentile / 100 for r in ranked[:pool]])
    space = main_axes(matrix, has) if has.sum() > 1 else np.zeros((pool, 1), np.float32)
    scores = np.array([r.item.raw_score for r in ranked[:pool]])
    merit = trade_off * merit_among_alike(space, has, scores, percentiles)
    closest = np.zeros(pool)  # similarity to the closest photo picked so far
    free = np.ones(n, dtype=bool)
    order: list[int] = []
    for step in range(limit):
        value = merit - (1 - trade_off) * closest if step else merit.copy()
        value[~free[:pool]] = -np.inf
        pick = int(np.argmax(value))  # the first of equal values: the better rank
        order.append(pick)
        free[pick] = False
        closest = np.maximum(closest, space @ space[pick])
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
