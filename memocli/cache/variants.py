"""Scores (and feature vectors) of another variant of a model: the same weights and
preprocessing computed in another precision, on another device or engine
(:mod:`memocli.model_id`), which serve where the run's own variant has none."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlite_utils

from ..model_id import family_of, is_variant
from .rows import chunks


def other_variants(db: sqlite_utils.Database, table: str, column: str,
                   hashes: Sequence[str], model: str,
                   usable: Callable[[Any], Any] = lambda value: value
                   ) -> dict[str, tuple[str, Any]]:
    """``{content_hash: (model id, value)}`` from ``table``'s rows of the other variants
    of ``model``'s family for ``hashes``: of each, the first in id order whose ``column``
    value ``usable`` turns into something other than None (and returns)."""
    family = family_of(model)
    if family is None or not hashes:
        return {}
    pattern = re.sub(r"([\\%_])", r"\\\1", family) + "-%"  # LIKE's wildcards as text
    taken: dict[str, bool] = {}  # per model id: a few at most
    found: dict[str, tuple[str, Any]] = {}
    for chunk in chunks(hashes):
        for content_hash, other, value in db.execute(
            f"SELECT content_hash, model, {column} FROM {table} WHERE model LIKE ? "
            f"ESCAPE '\\' AND content_hash IN ({','.join('?' * len(chunk))}) "
            "ORDER BY model", [pattern, *chunk],
        ).fetchall():
            if other not in taken:
                taken[other] = isinstance(other, str) and is_variant(other, model)
            if taken[other] and content_hash not in found and usable(value) is not None:
                found[content_hash] = other, usable(value)
    return found
