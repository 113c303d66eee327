"""The cache's schema: numbered migrations, applied once each, and the check that a file is
a cache this memo may use.

Append only: never edit or reorder a migration that has shipped. Each runs once, inside the
same transaction that records it in ``_memo_migrations``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

from .connection import transaction
from .rows import now_iso


def m001_scores_and_files(db: sqlite_utils.Database) -> None:
    db.table("scores").create(
        {"content_hash": str, "model": str, "score": float, "scored_at": str},
        pk=("content_hash", "model"), not_null={"score"},
    )
    db.table("files").create(
        {"path": str, "content_hash": str, "size": int, "mtime_ns": int, "seen_at": str},
        pk="path", not_null={"content_hash", "size", "mtime_ns"},
    )
    db.table("files").create_index(["content_hash"], index_name="files_content_hash")


def m002_images(db: sqlite_utils.Database) -> None:
    db.table("images").create(
        {"content_hash": str, "width": int, "height": int, "taken_at": str, "camera": str},
        pk="content_hash",
    )


def m003_checkpoints(db: sqlite_utils.Database) -> None:
    db.table("checkpoints").create(
        {"path": str, "size": int, "mtime_ns": int, "model": str, "seen_at": str},
        pk="path", not_null={"size", "mtime_ns", "model"},
    )


def m004_features(db: sqlite_utils.Database) -> None:
    db.table("features").create(
        {"content_hash": str, "model": str, "vector": bytes},
        pk=("content_hash", "model"), not_null={"vector"},
    )


def m005_checkpoint_setups(db: sqlite_utils.Database) -> None:
    """Model ids now depend on device, precision and preprocessing, not on the file alone.

    The old rows name ids no score is written under any more: they go. Rows merged from an
    older cache lack the new key columns and are skipped (``INSERT OR IGNORE``).
    """
    db.table("checkpoints").drop()
    db.table("checkpoints").create(
        {"path": str, "device": str, "precision": str, "preprocessing": int, "size": int,
         "mtime_ns": int, "model": str, "seen_at": str},
        pk=("path", "device", "precision", "preprocessing"),
        not_null={"device", "precision", "preprocessing", "size", "mtime_ns", "model"},
    )


def m006_checkpoint_engines(db: sqlite_utils.Database) -> None:
    """Model ids now also depend on the inference engine (``--engine``): like m005, the old
    rows go (each checkpoint is read once more) and the key gains a column."""
    db.table("checkpoints").drop()
    db.table("checkpoints").create(
        {"path": str, "device": str, "precision": str, "engine": str, "preprocessing": int,
         "size": int, "mtime_ns": int, "model": str, "seen_at": str},
        pk=("path", "device", "precision", "engine", "preprocessing"),
        not_null={"device", "precision", "engine", "preprocessing", "size", "mtime_ns",
                  "model"},
    )


def m007_failures(db: sqlite_utils.Database) -> None:
    """Contents that could not be decoded, under the preprocessing version that tried: a
    re-run reports them without loading the model (the ``files`` row has path, size and
    mtime)."""
    db.table("failures").create(
        {"content_hash": str, "preprocessing": int, "reason": str, "failed_at": str},
        pk="content_hash", not_null={"preprocessing", "reason"},
    )


def m008_image_kinds(db: sqlite_utils.Database) -> None:
    """What kind of picture a content is (:mod:`memocli.kinds`); NULL until it is described
    again (the next scan reads the header and a thumbnail once)."""
    db.table("images").add_column("kind", str)


def m009_rescore_tiffs(db: sqlite_utils.Database) -> None:
    """Forget the scores and features of TIFF contents: memo before this migration decoded
    32-bit float TIFFs as black and clipped 32-bit integer ones (the model id did not
    change, since no other photo's pixels did), so they are scored once more. Other
    formats keep theirs."""
    tiffs = ("SELECT content_hash FROM files WHERE lower(path) LIKE '%.tif' "
             "OR lower(path) LIKE '%.tiff'")
    for table in ("scores", "features"):
        db.execute(f"DELETE FROM {table} WHERE content_hash IN ({tiffs})")


def m010_describe_kinds_again(db: sqlite_utils.Database) -> None:
    """Forget the kinds that a picture's pixels decided (those without a camera's name):
    the classifier before this migration called about one dark or hazy photo in six a
    drawing, so the next scan describes them again. Scores are kept."""
    db.execute("UPDATE images SET kind = NULL WHERE camera IS NULL OR camera = ''")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_scores_and_files,
    m002_images,
    m003_checkpoints,
    m004_features,
    m005_checkpoint_setups,
    m006_checkpoint_engines,
    m007_failures,
    m008_image_kinds,
    m009_rescore_tiffs,
    m010_describe_kinds_again,
]


def schema_problem(conn: sqlite3.Connection, schema: str = "main") -> str | None:
    """Why the database ``schema`` is not a cache this memo may use, or None if it is.

    A database without tables is a new cache. One with tables but no ``_memo_migrations``
    belongs to something else; one with migrations this memo does not know was written
    by a newer memo.
    """
    tables = {r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "_memo_migrations" not in tables:
        return "not a memo cache (an SQLite file with other tables)"
    applied = {r[0] for r in conn.execute(f"SELECT name FROM {schema}._memo_migrations")}
    unknown = sorted(str(name) for name in applied - {m.__name__ for m in MIGRATIONS})
    if unknown:
        return f"written by a newer memo ({', '.join(unknown)}); upgrade memo"
    return None


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the migrations this database has not had yet; returns their names.

    Uses ``BEGIN IMMEDIATE`` so two processes opening a new cache at once do not both
    migrate: the second waits for the write lock, then finds nothing left to do.
    """
    if not pending(db):
        return []
    applied_now: list[str] = []
    with transaction(db.conn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS _memo_migrations "
                     "(name TEXT PRIMARY KEY, applied_at TEXT)")
        for migration in pending(db):  # re-read under the lock
            migration(db)
            conn.execute("INSERT INTO _memo_migrations (name, applied_at) VALUES (?, ?)",
                         (migration.__name__, now_iso()))
            applied_now.append(migration.__name__)
    return applied_now


def pending(db: sqlite_utils.Database) -> list[Callable]:
    """The migrations ``db`` has not had yet, in order."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = '_memo_migrations'").fetchone():
        return list(MIGRATIONS)
    done = {row[0] for row in db.execute("SELECT name FROM _memo_migrations").fetchall()}
    return [m for m in MIGRATIONS if m.__name__ not in done]
