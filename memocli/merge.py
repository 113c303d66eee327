"""``memo cache merge``: combine caches written by separate jobs (``memo score --shard``).

Every table of the cache has a primary key (content hash and model, content hash, or
path), so merging copies the rows of each source table whose key the destination lacks
(``INSERT OR IGNORE``): rows already there win, and merging again changes nothing. Tables
are found in the schema, not listed here, so those of later migrations merge as well.
A kept row whose real-valued column (a score) differs from the source's by more than the
tolerance is reported as a conflict. A source row whose value does not fit its column's
type (text or an infinite number as a score, bytes as a camera), or a feature vector of
another length than its model's, is refused and counted.
Identifiers read from a source are quoted (:func:`_q`), never pasted raw into SQL.

Each source is merged in one transaction: a crash leaves the destination as it was
before that source. Like :mod:`memocli.cache`, this module does not import torch.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Cache, migrations
from .cache.connection import transaction
from .cache.migrations import schema_problem
from .cache.rows import usual_length
from .cache.sqlite_errors import describe_sqlite_error
from .errors import MemoError
from .parquet_import import import_parquet, is_parquet_source

#: Scores of one photo and checkpoint computed in different precisions (``--precision``)
#: agree within this; a larger difference is a conflict.
DEFAULT_TOLERANCE = 0.01
MAX_EXAMPLES = 10  # conflicts kept per source for the report (all are counted)
_VECTOR_SAMPLE = 1000  # feature vectors per model whose lengths say the model's


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
    """What merging one source added (rows per table), refused, and where it disagreed."""

    source: str
    added: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    examples: list[Conflict] = field(default_factory=list)


@dataclass(frozen=True)
class _Column:
    name: str
    declared: str
    not_null: bool
    key: bool


@dataclass(frozen=True)
class _Table:
    columns: list[_Column]

    @property
    def keys(self) -> list[str]:
        return [c.name for c in self.columns if c.key]

    @property
    def reals(self) -> list[str]:
        return [c.name for c in self.columns if not c.key and _is_real(c.declared)]


def _is_real(declared_type: str) -> bool:
    """SQLite's rule for REAL affinity."""
    return any(t in declared_type.upper() for t in ("REAL", "FLOA", "DOUB"))


def _q(name: str) -> str:
    """``name`` as an SQL identifier: quoted, its own quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def _tables(conn: sqlite3.Connection, schema: str) -> dict[str, _Table]:
    names = [r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name != '_memo_migrations' ORDER BY name")]
    tables = {}
    for name in names:
        info = conn.execute(f"PRAGMA {schema}.table_info({_q(name)})").fetchall()
        # (cid, name, type, notnull, default, pk position or 0)
        keyed = sorted(info, key=lambda c: (c[5] == 0, c[5], c[0]))
        tables[name] = _Table([_Column(c[1], c[2] or "", bool(c[3]), bool(c[5])) for c in keyed])
    return tables


def _valid(column: _Column) -> str:
    """SQL: the source row's value fits ``column`` (its type; a finite number; not null if
    it must not be). Key columns may also be blobs: file names that are not UTF-8."""
    v = f"s.{_q(column.name)}"
    declared = column.declared.upper()
    if "INT" in declared:
        kind = f"typeof({v}) = 'integer'"
    elif any(t in declared for t in ("CHAR", "CLOB", "TEXT")):
        kind = f"typeof({v}) IN ('text', 'blob')" if column.key else f"typeof({v}) = 'text'"
    elif "BLOB" in declared:
        kind = f"typeof({v}) = 'blob'"
    elif _is_real(declared):
        kind = f"(typeof({v}) IN ('real', 'integer') AND abs({v}) <= {_LARGEST_FLOAT!r})"
    else:
        kind = "1"
    if column.not_null or column.key:
        return f"({v} IS NOT NULL AND {kind})"
    return f"({v} IS NULL OR {kind})"


_LARGEST_FLOAT = 1.7976931348623157e308  # abs(inf) is larger


def _vector_rule(conn: sqlite3.Connection) -> str:
    """SQL: the source ``features`` row's vector has its model's length, as a sample of the
    destination's vectors of that model says, else one of the source's
    (:func:`~memocli.cache.rows.usual_length`). A vector of another length (a damaged
    shard's) would break bursts."""

    def sampled_length(schema: str, model: Any) -> int | None:
        return usual_length(dict(conn.execute(
            f"SELECT length(vector), count(*) FROM (SELECT vector FROM {schema}.features "
            "WHERE model = ? AND typeof(vector) = 'blob' LIMIT ?) GROUP BY 1",
            [model, _VECTOR_SAMPLE]).fetchall()))

    conn.execute("CREATE TEMP TABLE _memo_vector_lengths (model PRIMARY KEY, length)")
    conn.executemany("INSERT INTO temp._memo_vector_lengths VALUES (?, ?)", [
        (model, sampled_length("main", model) or sampled_length("src", model))
        for (model,) in conn.execute("SELECT DISTINCT model FROM src.features").fetchall()])
    return ("coalesce(length(s.vector) = (SELECT length FROM temp._memo_vector_lengths "
            "WHERE model = s.model), 0)")  # no usable length (all odd): refused, and counted


def _merge_table(conn: sqlite3.Connection, name: str, table: _Table, report: SourceReport,
                 tolerance: float) -> None:
    cols = ", ".join(_q(c.name) for c in table.columns)
    picked = ", ".join(f"s.{_q(c.name)}" for c in table.columns)
    valid = " AND ".join(_valid(c) for c in table.columns)
    if name == "features":
        valid += f" AND {_vector_rule(conn)}"
    join = " AND ".join(f"m.{_q(k)} = s.{_q(k)}" for k in table.keys)
    for column in table.reals:
        rows = conn.execute(
            f"SELECT {', '.join(f's.{_q(k)}' for k in table.keys)}, m.{_q(column)}, "
            f"s.{_q(column)} FROM src.{_q(name)} s JOIN main.{_q(name)} m ON {join} "
            f"WHERE {valid} AND abs(m.{_q(column)} - s.{_q(column)}) > ?", [tolerance])
        for row in rows:
            report.conflicts += 1
            if len(report.examples) < MAX_EXAMPLES:
                key = dict(zip(table.keys, row[:-2], strict=True))
                report.examples.append(Conflict(name, key, column, row[-2], row[-1]))
    refused = conn.execute(
        f"SELECT count(*) FROM src.{_q(name)} s WHERE NOT ({valid})").fetchone()[0]
    if refused:
        report.refused[name] = refused
    report.added[name] = conn.execute(
        f"INSERT OR IGNORE INTO main.{_q(name)} ({cols}) "
        f"SELECT {picked} FROM src.{_q(name)} s WHERE {valid}"
    ).rowcount


def _shared(name: str, ours: _Table, theirs: _Table, source: Path,
            older: bool) -> _Table | None:
    """Our table's columns that the source has.

    A table lacking a key or required column is skipped when the source is from an older
    memo (a later migration added the column; its rows are obsolete), and refuses the
    source otherwise: it is not the table its migrations say.
    """
    have = {c.name for c in theirs.columns}
    missing = [c.name for c in ours.columns if (c.key or c.not_null) and c.name not in have]
    if missing and older:
        return None
    if missing:
        raise MemoError(f"{source}: not a memo cache (its table {name!r} has no "
                        f"{', '.join(repr(m) for m in missing)} column)")
    return _Table([c for c in ours.columns if c.name in have])


def _is_older(conn: sqlite3.Connection) -> bool:
    """Whether the attached source lacks migrations this memo has (an older memo's)."""
    if not conn.execute("SELECT 1 FROM src.sqlite_master WHERE name = '_memo_migrations'"
                        ).fetchone():
        return True  # an empty database: nothing to merge
    applied = {r[0] for r in conn.execute("SELECT name FROM src._memo_migrations")}
    return any(m.__name__ not in applied for m in migrations.MIGRATIONS)


def _merge_one(cache: Cache, source: Path, tolerance: float) -> SourceReport:
    if not source.is_file():
        raise MemoError(f"{source}: no such file")
    if os.path.samefile(source, cache.path):
        raise MemoError(f"{source}: is the destination itself")
    conn = cache.db.conn
    try:
        conn.execute("ATTACH DATABASE ? AS src", [str(source)])
        problem = schema_problem(conn, "src")
    except sqlite3.DatabaseError as e:
        raise MemoError(f"{source}: not a memo cache ({e})") from None
    try:
        if problem:
            raise MemoError(f"{source}: {problem}" + " to merge it" * ("newer" in problem))
        ours, theirs = _tables(conn, "main"), _tables(conn, "src")
        older = _is_older(conn)
        tables = {name: _shared(name, table, theirs[name], source, older)
                  for name, table in ours.items() if name in theirs}
        report = SourceReport(str(source))
        with transaction(conn):
            for name, table in tables.items():
                if table is not None:
                    _merge_table(conn, name, table, report, tolerance)
        return report
    except sqlite3.DatabaseError as e:
        raise MemoError(describe_sqlite_error(e, cache.path, cache.busy_timeout_s)) from None
    finally:
        conn.execute("DROP TABLE IF EXISTS temp._memo_vector_lengths")
        conn.execute("DETACH DATABASE src")


def merge_caches(sources: list[str | os.PathLike], dest: str | os.PathLike,
                 tolerance: float = DEFAULT_TOLERANCE) -> list[SourceReport]:
    """Merge each of ``sources`` into ``dest`` (created and migrated if needed), in order;
    a source may also be a ``memo batch`` output (a folder of Parquet files).

    Source rows whose values do not fit the column (text in a score, a non-finite number,
    bytes in a text field) are not copied; :attr:`SourceReport.refused` counts them.

    Raises:
        MemoError: a source is not a memo cache (those before it stay merged).
    """
    with Cache(dest) as cache:
        return [_merge_parquet(cache, s, tolerance) if is_parquet_source(s)
                else _merge_one(cache, Path(s), tolerance) for s in sources]


def _merge_parquet(cache: Cache, source: str | os.PathLike, tolerance: float) -> SourceReport:
    """A ``memo batch`` output merged (:mod:`memocli.parquet_import`), reported as a cache's."""
    imported = import_parquet(cache, source, tolerance, MAX_EXAMPLES)
    report = SourceReport(str(source), imported.added, conflicts=imported.conflicts)
    if imported.refused:
        report.refused["scores"] = imported.refused
    report.examples = [Conflict("scores", {"content_hash": h, "model": m}, "score", kept, other)
                       for h, m, kept, other in imported.examples]
    return report
