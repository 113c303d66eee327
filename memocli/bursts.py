"""Bursts: photos taken seconds apart that look alike, and near-duplicates.

Two photos are *linked* when

* both have a time taken (EXIF, to the second) at most ``seconds`` apart and the cosine
  similarity of their features (the model's pooled last backbone block) is at least
  ``similarity``; or
* neither has a time taken and their similarity is at least the stricter
  :func:`untimed_threshold` (near-duplicates: copies, re-exports, light edits).

A photo with a time is never linked to one without. A burst is a group of photos joined by
links (a chain of similar frames, each seconds after the last, is one burst). Its best
frame is its most memorable photo, and its id is that frame's rank (see ``docs/scoring.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the scoring pipeline load on use: `memo --help` stays quick
    import numpy as np

    from .ranking import Ranked
    from .score import ScoredFile

DEFAULT_SECONDS = 3.0
# Cosine similarity of vnet_r50 features: 7,140 pairs of different LNSIM photos reach at most
# 0.79 (99% below 0.60); copies shifted by 4% or relit by 15% stay above 0.86.
DEFAULT_SIMILARITY = 0.80
_BLOCK = 1024  # rows per similarity block for photos without a time


def untimed_threshold(similarity: float) -> float:
    """The similarity photos without a time need: half-way from ``similarity`` to 1."""
    return (1.0 + similarity) / 2


def seconds_of(taken_at: str | None) -> float | None:
    """An ISO ``YYYY-MM-DDTHH:MM:SS`` time taken as seconds; None if absent or a date alone."""
    if not taken_at or "T" not in taken_at:
        return None
    return datetime.fromisoformat(taken_at).replace(tzinfo=timezone.utc).timestamp()


def decode(vector: bytes | None) -> np.ndarray | None:
    """A stored feature vector (little-endian float16 bytes) as float32."""
    import numpy as np

    return None if vector is None else np.frombuffer(vector, dtype="<f2").astype(np.float32)


def group(times: Sequence[float | None], vectors: Sequence[np.ndarray | None],
          seconds: float = DEFAULT_SECONDS,
          similarity: float = DEFAULT_SIMILARITY) -> list[int]:
    """The burst of each photo, as the lowest index in its burst.

    Args:
        times: time taken in seconds (None: unknown), one per photo.
        vectors: feature vectors (any scale; None: never linked), one per photo.
        seconds: the most two linked photos' times may differ.
        similarity: the least cosine similarity of two linked photos with times.
    """
    import numpy as np

    n = len(times)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        parent[max(a, b)] = min(a, b)  # the root stays the lowest index

    usable = [i for i in range(n) if vectors[i] is not None]
    if not usable:
        return parent
    matrix = np.stack([np.asarray(vectors[i], dtype=np.float32) for i in usable])  # [M, D]
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    unit = dict(zip(usable, matrix, strict=True))

    timed = sorted((times[i], i) for i in usable if times[i] is not None)
    for a, (t, i) in enumerate(timed):
        b = a + 1
        while b < len(timed) and timed[b][0] - t <= seconds:
            b += 1
        later = [j for _, j in timed[a + 1:b]]
        if later:
            sims = np.stack([unit[j] for j in later]) @ unit[i]
            for j, s in zip(later, sims, strict=True):
                if s >= similarity:
                    union(i, j)

    untimed = [i for i in usable if times[i] is None]
    if untimed:
        block = np.stack([unit[i] for i in untimed])  # [U, D]
        strict = untimed_threshold(similarity)
        for start in range(0, len(untimed), _BLOCK):
            rows, cols = np.nonzero(block[start:start + _BLOCK] @ block.T >= strict)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                if start + r < c:
                    union(untimed[start + r], untimed[c])
    return [find(i) for i in range(n)]


def rank_bursts(files: Sequence[ScoredFile], seconds: float = DEFAULT_SECONDS,
                similarity: float = DEFAULT_SIMILARITY,
                one_per_burst: bool = False) -> list[Ranked]:
    """:func:`~memocli.ranking.rank` with each photo's ``burst`` (its best frame's rank).

    With ``one_per_burst`` only the best frames are kept, ranked among themselves (each
    burst counts as one photo; ``burst`` then equals ``rank``).
    """
    from .ranking import rank

    ranked = rank(files)
    heads = group([seconds_of(r.item.meta.taken_at) for r in ranked],
                  [decode(r.item.features) for r in ranked], seconds, similarity)
    ranked = [replace(r, burst=ranked[head].rank) for r, head in zip(ranked, heads, strict=True)]
    if not one_per_burst:
        return ranked
    return [replace(r, burst=r.rank) for r in rank([r.item for r in ranked if r.burst == r.rank])]
