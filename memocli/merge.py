"""``memo cache merge``: combine caches written by separate jobs (``memo score --shard``).

Every table of the cache has a primary key (content hash and model, content hash, or
path), so merging copies the rows of each source table whose key the destination lacks
(``INSERT OR IGNORE``): rows already there win, and merging again changes nothing. Tables
are found in the schema, not listed here, so those of later migrations merge as well.
A kept row whose real-valued column (a score) differs from the source's by more than the
tolerance is reported as a conflict.

Each source is merged in one transaction: a crash leaves the destination as it was
before that source. Like :mod:`memocli.cache`, this module does not import torch.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .cache import MIGRATIONS, Cache
from .errors import MemoError

#: Scores of one photo and checkpoint computed in different precisions (``--precision``)
#: agree within this; a larger difference is a conflict.
DEFAULT_TOLERANCE = 0.01
MAX_EXAMPLES = 10  # conflicts kept per source for the report (all are counted)


@dataclass(frozen=True)
class Conflict:
    """A row both caches have, with a different value in ``column``."""

    table: str
    key: dict[str, object]
    column: str
    kept: float
    other: float


@dataclass
class SourceReport:
    """What merging one source added (rows per table) and where it disagreed."""

    source: str
    added: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    examples: list[Conflict] = field(default_factory=list)


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    keys: list[str]
    reals: list[str]


def _is_real(declared_type: str) -> bool:
    """SQLite's rule for REAL affinity."""
    return any(t in declared_type.upper() for t in ("REAL", "FLOA", "DOUB"))


def _tables(conn: sqlite3.Connection, schema: str) -> dict[str, _Table]:
    names = [r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name != '_memo_migrations' ORDER BY name")]
    tables = {}
    for name in names:
        info = conn.execute(f'PRAGMA {schema}.table_info("{name}")').fetchall()
        # (cid, name, type, notnull, default, pk position or 0)
        tables[name] = _Table(
            columns=[c[1] for c in info],
            keys=[c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]],
            reals=[c[1] for c in info if not c[5] and _is_real(c[2])],
        )
    return tables


def _check_source(conn: sqlite3.Connection, source: Path) -> None:
    """Refuse a source that is not a memo cache, or one from a newer memo."""
    try:
        applied = {r[0] for r in conn.execute("SELECT name FROM src._memo_migrations")}
    except sqlite3.DatabaseError:
        raise MemoError(f"{source}: not a memo cache") from None
    unknown = sorted(applied - {m.__name__ for m in MIGRATIONS})
    if unknown:
        raise MemoError(f"{source}: written by a newer memo ({', '.join(unknown)}); "
                        "upgrade memo to merge it")


def _q(name: str) -> str:
    return f'"{name}"'


def _merge_table(conn: sqlite3.Connection, name: str, table: _Table, report: SourceReport,
                 tolerance: float) -> None:
    cols = ", ".join(_q(c) for c in table.columns)
    join = " AND ".join(f"m.{_q(k)} = s.{_q(k)}" for k in table.keys)
    for column in table.reals:
        rows = conn.execute(
            f"SELECT {', '.join(f's.{_q(k)}' for k in table.keys)}, m.{_q(column)}, "
            f"s.{_q(column)} FROM src.{_q(name)} s JOIN main.{_q(name)} m ON {join} "
            f"WHERE abs(m.{_q(column)} - s.{_q(column)}) > ?", [tolerance])
        for row in rows:
            report.conflicts += 1
            if len(report.examples) < MAX_EXAMPLES:
                key = dict(zip(table.keys, row[:-2], strict=True))
                report.examples.append(Conflict(name, key, column, row[-2], row[-1]))
    report.added[name] = conn.execute(
        f"INSERT OR IGNORE INTO main.{_q(name)} ({cols}) SELECT {cols} FROM src.{_q(name)}"
    ).rowcount


def _merge_one(cache: Cache, source: Path, tolerance: float) -> SourceReport:
    if not source.is_file():
        raise MemoError(f"{source}: no such file")
    if os.path.samefile(source, cache.path):
        raise MemoError(f"{source}: is the destination itself")
    conn = cache.db.conn
    try:
        conn.execute("ATTACH DATABASE ? AS src", [str(source)])
    except sqlite3.DatabaseError as e:
        raise MemoError(f"{source}: not a memo cache ({e})") from None
    try:
        _check_source(conn, source)
        ours, theirs = _tables(conn, "main"), _tables(conn, "src")
        report = SourceReport(str(source))
        conn.execute("BEGIN IMMEDIATE")
        try:
            for name, table in ours.items():
                if name in theirs:
                    shared = [c for c in table.columns if c in theirs[name].columns]
                    _merge_table(conn, name, _Table(shared, table.keys,
                                                    [c for c in table.reals if c in shared]),
                                 report, tolerance)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return report
    finally:
        conn.execute("DETACH DATABASE src")


def merge_caches(sources: list[str | os.PathLike], dest: str | os.PathLike,
                 tolerance: float = DEFAULT_TOLERANCE) -> list[SourceReport]:
    """Merge each of ``sources`` into ``dest`` (created and migrated if needed), in order.

    Raises:
        MemoError: a source is not a memo cache (those before it stay merged).
    """
    with Cache(dest) as cache:
        return [_merge_one(cache, Path(s), tolerance) for s in sources]
