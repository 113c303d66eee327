"""``memo batch --rank``: every scored photo of a model in DEST, ranked on the cluster.

Ranks and percentiles follow :func:`memocli.ranking.rank` over the photos (``kind``
photo, as ``memo export`` ranks without ``--include-all``): by raw score, highest first,
ties by path; the percentile is the share of the other photos that score lower, a tie
counting as half. Nothing is collected on the driver: a group-by counts the photos of each
score (for ties), a join brings the count to each row, Ray's distributed sort orders the
rows, and one actor numbers them as they stream past in order, into ``DEST/ranked/``
(replaced on each run; the part files stay as they are).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .batch_parts import RANKED, SCHEMA, Parts, dataset_of
from .kinds import PHOTO

RANKED_SCHEMA = SCHEMA.append(pa.field("rank", pa.int64())).append(
    pa.field("percentile", pa.float64()))
_TIES = "count()"  # the column Ray's count aggregation names


def _scored_by(batch: pa.Table, model_id: str) -> pa.Table:
    """The photos of ``batch`` scored by ``model_id``: error rows and other kinds of
    picture (icons, screenshots, ...) left out, as ``memo export`` leaves them out."""
    kind = batch.column("kind")
    keep = pc.and_(pc.and_(pc.equal(batch.column("model_id"), model_id),
                           pc.is_valid(batch.column("raw_score"))),
                   pc.or_kleene(pc.is_null(kind), pc.equal(kind, PHOTO)))
    return batch.filter(keep)


class Numbering:
    """Ranks and percentiles for rows arriving in rank order (one actor, order kept)."""

    def __init__(self, total: int):
        self.total = total
        self.next_rank = 1
        self.group_start = 1
        self.previous: float | None = None

    def __call__(self, batch: pa.Table) -> pa.Table:
        ranks, percentiles = [], []
        n = self.total
        for raw, ties in zip(batch.column("raw_score").to_pylist(),
                             batch.column(_TIES).to_pylist(), strict=True):
            if raw != self.previous:
                self.group_start, self.previous = self.next_rank, raw
            lower = n - (self.group_start - 1) - ties  # photos scoring below this one
            ranks.append(self.next_rank)
            percentiles.append(100.0 if n == 1 else 100.0 * (lower + (ties - 1) / 2) / (n - 1))
            self.next_rank += 1
        table = batch.drop_columns([_TIES])
        table = table.append_column("rank", pa.array(ranks, pa.int64()))
        table = table.append_column("percentile", pa.array(percentiles, pa.float64()))
        return table.select(RANKED_SCHEMA.names).cast(RANKED_SCHEMA)


def write_ranked(parts: Parts, model_id: str) -> str | None:
    """Write ``DEST/ranked/`` for ``model_id`` from ``parts`` (DEST's); its path in DEST's
    file system (None when DEST holds nothing)."""
    import ray.data

    ds = dataset_of(parts)
    if ds is None:
        return None
    scored = ds.map_batches(_scored_by, fn_kwargs={"model_id": model_id},
                            batch_format="pyarrow")
    total = scored.count()
    target = f"{parts.root.rstrip('/')}/{RANKED}"
    parts.filesystem.create_dir(target, recursive=True)
    parts.filesystem.delete_dir_contents(target, missing_dir_ok=True)
    if not total:
        return target
    ties = scored.groupby("raw_score").count()
    ordered = scored.join(ties, "inner", num_partitions=1, on=("raw_score",)).sort(
        ["raw_score", "path"], descending=[True, False])
    context = ray.data.DataContext.get_current()
    kept, context.execution_options.preserve_order = (
        context.execution_options.preserve_order, True)
    try:
        ordered.map_batches(Numbering, fn_constructor_args=(total,), batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=1)
                            ).write_parquet(target, filesystem=parts.filesystem)
    finally:
        context.execution_options.preserve_order = kept
    return target
