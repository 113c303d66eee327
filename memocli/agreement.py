"""How memo's ranking agrees with the user's own stars (``memo agreement``).

For a group of photos (a folder, or all of them), with memo's percentile among all the
photos of the run and the user's rating where there is one:

- Spearman's rho between the stars (1-5; rejects and unrated photos left out) and memo's
  score;
- memo's median percentile for each star level (and for rejects);
- of the user's 4-5 star photos, the share in memo's top k of the group (k: the number of
  such photos, unless given), with the share chance would give (k / photos).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .files import printable
from .ranking import Ranked
from .user_ratings import REJECT

HIGH_STARS = 4  # "the user's best": 4 and 5 stars


@dataclass
class Agreement:
    """The agreement figures of one group of photos (None where undefined)."""

    group: str
    photos: int
    rated: int  # 1-5 stars
    rejected: int
    spearman: float | None
    median_percentile: dict[str, float]  # 'rejected', '1'...'5' -> median percentile
    top_k: int
    best_in_top_k: int | None  # the user's 4-5 star photos among memo's top k
    best: int  # the user's 4-5 star photos
    chance: float | None  # the share of the group in the top k

    @property
    def best_share(self) -> float | None:
        return None if not self.best else self.best_in_top_k / self.best

    def to_json(self) -> dict:
        return {**asdict(self), "best_share": self.best_share}


def agreement(group: str, ranked: Sequence[Ranked], stars: dict[str, int],
              top_k: int | None = None) -> Agreement:
    """The figures for ``ranked`` (the group's photos, percentiles from the whole run)."""
    from .metrics import spearman  # torch: imported only when there is something to compare

    rated = [r for r in ranked if stars.get(r.item.path, 0) >= 1]
    rejected = [r for r in ranked if stars.get(r.item.path) == REJECT]
    rho = None
    if len(rated) >= 2:
        value = spearman([r.item.raw_score for r in rated], [stars[r.item.path] for r in rated])
        rho = None if math.isnan(value) else round(value, 4)  # nan: all stars (or scores) alike
    levels = {"rejected": rejected} | {
        str(n): [r for r in rated if stars[r.item.path] == n] for n in range(1, 6)}
    medians = {name: round(statistics.median(r.percentile for r in members), 2)
               for name, members in levels.items() if members}
    best = {r.item.path for r in rated if stars[r.item.path] >= HIGH_STARS}
    k = min(top_k if top_k is not None else len(best), len(ranked))
    by_score = sorted(ranked, key=lambda r: (-r.item.raw_score, r.item.path))
    hits = sum(r.item.path in best for r in by_score[:k])
    return Agreement(group=group, photos=len(ranked), rated=len(rated),
                     rejected=len(rejected), spearman=rho, median_percentile=medians,
                     top_k=k, best_in_top_k=hits if best else None, best=len(best),
                     chance=round(k / len(ranked), 4) if ranked else None)


def by_folder(ranked: Sequence[Ranked], stars: dict[str, int],
              top_k: int | None = None) -> list[Agreement]:
    """One :class:`Agreement` per folder holding rated photos, then one for all photos."""
    folders: dict[str, list[Ranked]] = {}
    for r in ranked:
        folders.setdefault(os.path.dirname(r.item.path) or os.curdir, []).append(r)
    groups = [agreement(folder, members, stars, top_k)
              for folder, members in sorted(folders.items())
              if any(r.item.path in stars for r in members)]
    return groups + [agreement("all", ranked, stars, top_k)]


def describe(a: Agreement) -> list[str]:
    """``a`` in a few lines of plain text."""
    lines = [f"{printable(a.group)}: {a.photos} photo(s), {a.rated} rated, {a.rejected} rejected"]
    rho = "n/a (fewer than 2 rated, or all alike)" if a.spearman is None else f"{a.spearman:.2f}"
    lines.append(f"  Spearman rho, stars vs memo's score: {rho}")
    if a.median_percentile:
        lines.append("  memo's median percentile: " + ", ".join(
            f"{name if name == 'rejected' else name + '*'} {pct:.0f}"
            for name, pct in a.median_percentile.items()))
    if a.best:
        lines.append(f"  your 4-5* photos in memo's top {a.top_k}: {a.best_in_top_k} of "
                     f"{a.best} ({a.best_share:.0%}; chance {a.chance:.0%})")
    return lines
