"""The score cache: one SQLite file (via sqlite-utils), WAL mode, schema in numbered migrations.

Tables (see ``docs/scoring.md``):

* ``scores(content_hash, model, score, scored_at)``, primary key ``(content_hash, model)``:
  the raw model output for one file content under one model.
* ``files(path, content_hash, size, mtime_ns, seen_at)`` keyed by absolute path: the
  stat index, so an unchanged file is never hashed again.
* ``images(content_hash, width, height, taken_at, camera)``: what belongs to the content
  (upright size, EXIF date taken and camera), shared by every model.
* ``checkpoints(path, device, precision, engine, preprocessing, size, mtime_ns, model)``: the
  model id a checkpoint file scores under with that ``--device``, ``--precision`` and
  ``--engine`` (as asked, ``auto`` included) and preprocessing version, as of its size and
  mtime, so a cached re-scan need not hash the checkpoint or import torch.
* ``features(content_hash, model, vector)``: the model's L2-normalised pooled last-block
  features (float16 bytes), written with the score, for finding bursts.

Every write is one short transaction; readers never block writers (WAL), and a second
``memo`` process waits up to the busy timeout for the write lock instead of failing.

This module must not import torch: ``memo cache info`` and cached re-scans use it alone.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from .errors import MemoError
from .files import os_reason

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # rows per "IN (...)" query, well under SQLite's variable limit


def default_cache_path() -> Path:
    """Where the cache lives unless ``--cache`` says otherwise.

    ``$MEMO_HOME/memo.db``, else ``$XDG_CACHE_HOME/memo/memo.db``, else
    ``~/.cache/memo/memo.db``.
    """
    home = os.environ.get("MEMO_HOME")
    if home:
        return Path(home).expanduser() / "memo.db"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "memo" / "memo.db"


def now_iso() -> str:
    """The current UTC time as ISO 8601 (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- migrations -------------------------------------------------------------------------
# Append only: never edit or reorder a migration that has shipped. Each runs once, inside
# the same transaction that records it in ``_memo_migrations``.


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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_scores_and_files,
    m002_images,
    m003_checkpoints,
    m004_features,
    m005_checkpoint_setups,
    m006_checkpoint_engines,
]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``): committed whole, or rolled back.

    memo's own, not ``sqlite_utils.Database.atomic`` (that exists only from sqlite-utils
    4.0). When SQLite has already rolled back by itself (a full disk), the original error
    is raised, not "cannot rollback - no transaction is active".
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the cache in WAL mode (a no-op once it is).

    Two processes creating one cache at the same moment both ask for the switch, which
    needs the file to themselves: the loser retries until the winner's switch shows, within
    ``timeout`` seconds. Every statement is read to the end, so none keeps a read lock.
    """
    deadline = time.monotonic() + timeout
    while conn.execute("PRAGMA journal_mode").fetchall()[0][0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = wal").fetchall()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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
    if not _pending(db):
        return []
    applied_now: list[str] = []
    with transaction(db.conn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS _memo_migrations "
                     "(name TEXT PRIMARY KEY, applied_at TEXT)")
        for migration in _pending(db):  # re-read under the lock
            migration(db)
            conn.execute("INSERT INTO _memo_migrations (name, applied_at) VALUES (?, ?)",
                         (migration.__name__, now_iso()))
            applied_now.append(migration.__name__)
    return applied_now


def _pending(db: sqlite_utils.Database) -> list[Callable]:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = '_memo_migrations'").fetchone():
        return list(MIGRATIONS)
    done = {row[0] for row in db.execute("SELECT name FROM _memo_migrations").fetchall()}
    return [m for m in MIGRATIONS if m.__name__ not in done]


# --- SQLite's errors, in one line ---------------------------------------------------------


def describe_sqlite_error(error: sqlite3.Error, path: Path | None,
                          waited_s: float = BUSY_TIMEOUT_S) -> str:
    """One line for a failed cache operation, naming the cache and what to do about it."""
    where = str(path) if path is not None else "the in-memory cache"
    text = str(error)
    if "locked" in text or "busy" in text:
        return (f"{where}: the cache is locked by another process (waited {waited_s:g} s); "
                "run again when it is done, or use --cache OTHER.db")
    if "disk is full" in text:
        return (f"{where}: disk full while writing the cache; free some space and run again "
                "(what was saved before is kept)")
    if "readonly" in text or "read-only" in text:
        return (f"{where}: the cache is read-only; use --no-cache, or --cache with a "
                "writable path")
    if "not a database" in text or "malformed" in text:
        return (f"{where}: not a memo cache, or corrupt ({text}); delete it or use "
                "--cache OTHER.db")
    return f"{where}: cannot use the cache: {text}"


def _reporting_sqlite_errors(method: Callable) -> Callable:
    @functools.wraps(method)
    def guarded(self: Cache, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise MemoError(describe_sqlite_error(
                e, getattr(self, "path", None), getattr(self, "busy_timeout_s", BUSY_TIMEOUT_S),
            )) from None

    return guarded


def _one_line_errors(cls: type) -> type:
    """Class decorator: every public method of ``cls`` (and ``__init__``) reports SQLite's
    errors as a :class:`MemoError` from :func:`describe_sqlite_error`."""
    for name, member in list(vars(cls).items()):
        if callable(member) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, _reporting_sqlite_errors(member))
    return cls


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageMeta:
    """What belongs to a file's content: upright size and EXIF facts (None when unknown)."""

    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None


@dataclass(frozen=True)
class CheckpointSetup:
    """A checkpoint file as of one stat, scored with one ``--device``, ``--precision`` and
    engine (as the user asked, ``auto`` included: see
    :func:`memocli.engines.engine_setup_key`) under one preprocessing version."""

    path: str  # absolute
    device: str
    precision: str
    engine: str
    preprocessing: int
    size: int
    mtime_ns: int


def _setup_row(setup: CheckpointSetup) -> list:
    """``setup``'s column values, its path stored as :func:`db_path` stores paths."""
    return [db_path(setup.path), *astuple(setup)[1:]]


@dataclass(frozen=True)
class KnownFile:
    """A ``files`` row, with this model's score and the content's metadata if stored."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    score: float | None
    meta: ImageMeta | None


@dataclass(frozen=True)
class KnownContent:
    """What the cache holds for one content hash: this model's score, the metadata."""

    score: float | None
    meta: ImageMeta | None


def db_path(path: str) -> str | bytes:
    """How a file path is stored: as text, or, for a name that is not valid UTF-8 (it
    reaches Python with ``surrogateescape`` surrogates), as the file name's bytes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def path_from_db(stored: str | bytes) -> str:
    """Inverse of :func:`db_path`."""
    return os.fsdecode(stored) if isinstance(stored, bytes) else stored


def stored_score(value: Any) -> float | None:
    """A stored score, or None when the row holds no finite number (it is scored again)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 < value < 1 << 31 else None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def stored_meta(width: Any, height: Any, taken_at: Any, camera: Any) -> ImageMeta:
    """An ``images`` row as :class:`ImageMeta`; values of the wrong type read as unknown."""
    return ImageMeta(_int_or_none(width), _int_or_none(height), _text_or_none(taken_at),
                     _text_or_none(camera))


def _decode_text(raw: bytes) -> str:
    """Stored text as str; bytes that are not UTF-8 (a merged cache's) as surrogates, which
    :mod:`memocli.escape` shows as ``\\xNN``, instead of an error on reading."""
    return raw.decode("utf-8", "surrogateescape")


def _not_writable(path: Path) -> bool:
    """True for an existing cache file memo may not write (it or its folder is read-only)."""
    return path.is_file() and not (os.access(path, os.W_OK)
                                   and os.access(path.parent, os.W_OK))


def _meta(row: Sequence[Any], has_meta: bool) -> ImageMeta | None:
    return stored_meta(*row) if has_meta else None


class _DryRun(Exception):
    """Rolls back a transaction whose counts were all that was wanted."""


@_one_line_errors
class Cache:
    """The SQLite score cache. ``Cache(None)`` is a throw-away in-memory one (``--no-cache``).

    A cache file memo may not write (a read-only file or folder) is opened read-only: reads
    work, and the first write fails with a message saying so. Every SQLite error becomes a
    one-line :class:`MemoError` naming the cache (:func:`describe_sqlite_error`).
    """

    def __init__(self, path: str | os.PathLike | None, busy_timeout_s: float | None = None):
        self.path = Path(path) if path is not None else None
        self.busy_timeout_s = timeout = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.read_only = self.path is not None and _not_writable(self.path)
        try:
            conn = self._connect(timeout)
        except OSError as e:
            raise MemoError(f"{self.path}: cannot create the cache: {os_reason(e)}") from None
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.text_factory = _decode_text
        problem = schema_problem(conn)
        if problem:
            conn.close()
            raise MemoError(f"{self.path}: {problem}; use --cache with another path")
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        if self.read_only:
            if _pending(self.db):
                raise MemoError(f"{self.path}: the cache is read-only and needs upgrading; "
                                "use --no-cache, or --cache with a writable path")
            return
        if self.path is not None:
            use_wal(conn, timeout)
            # WAL + NORMAL: a committed batch survives a crash of memo; only a power
            # cut can drop the last few commits, and never corrupts the file.
            self.db.execute("PRAGMA synchronous = NORMAL")
        migrate(self.db)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        if self.path is None:
            return sqlite3.connect(":memory:")
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return sqlite3.connect(str(self.path), timeout=timeout)
        uri = self.path.resolve().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # WAL needs a -shm file it cannot create in a read-only folder; nobody can
            # write there either, so the file is read as it is.
            conn.close()
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=timeout)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------

    def lookup_paths(self, paths: Sequence[str], model: str) -> dict[str, KnownFile]:
        """Stored ``files`` rows for ``paths`` (absolute), joined to ``model``'s scores.

        One indexed query per 500 paths: the whole cost of a cached re-scan.
        """
        found: dict[str, KnownFile] = {}
        for chunk in _chunks([db_path(p) for p in paths]):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT f.path, f.size, f.mtime_ns, f.content_hash, s.score, "
                "i.content_hash IS NOT NULL, i.width, i.height, i.taken_at, i.camera "
                "FROM files f "
                "LEFT JOIN scores s ON s.content_hash = f.content_hash AND s.model = ? "
                "LEFT JOIN images i ON i.content_hash = f.content_hash "
                f"WHERE f.path IN ({marks})",
                [model, *chunk],
            ).fetchall()
            for row in rows:
                path = path_from_db(row[0])
                found[path] = KnownFile(path, row[1], row[2], row[3], stored_score(row[4]),
                                        _meta(row[6:], row[5]))
        return found

    def lookup_contents(self, hashes: Iterable[str], model: str) -> dict[str, KnownContent]:
        """What is stored for each content hash (hashes with nothing stored are left out)."""
        unique = list(dict.fromkeys(hashes))
        scores: dict[str, float] = {}
        metas: dict[str, ImageMeta] = {}
        for chunk in _chunks(unique):
            marks = ",".join("?" * len(chunk))
            for content_hash, score in self.db.execute(
                f"SELECT content_hash, score FROM scores WHERE model = ? "
                f"AND content_hash IN ({marks})", [model, *chunk]).fetchall():
                if stored_score(score) is not None:
                    scores[content_hash] = stored_score(score)
            for row in self.db.execute(
                f"SELECT content_hash, width, height, taken_at, camera FROM images "
                f"WHERE content_hash IN ({marks})", chunk,
            ).fetchall():
                metas[row[0]] = stored_meta(*row[1:])
        return {h: KnownContent(scores.get(h), metas.get(h))
                for h in unique if h in scores or h in metas}

    def features(self, hashes: Iterable[str], model: str) -> dict[str, bytes]:
        """Stored feature vectors of ``model`` by content hash (missing ones left out)."""
        found: dict[str, bytes] = {}
        for chunk in _chunks(list(dict.fromkeys(hashes))):
            found.update(self.db.execute(
                f"SELECT content_hash, vector FROM features WHERE model = ? "
                f"AND content_hash IN ({','.join('?' * len(chunk))})", [model, *chunk],
            ).fetchall())
        return found

    def checkpoint_model(self, setup: CheckpointSetup) -> str | None:
        """The model id recorded for this checkpoint setup, if the file is unchanged since."""
        row = self.db.execute(
            "SELECT model FROM checkpoints WHERE path = ? AND device = ? AND precision = ? "
            "AND engine = ? AND preprocessing = ? AND size = ? AND mtime_ns = ?",
            _setup_row(setup),
        ).fetchone()
        return row[0] if row and isinstance(row[0], str) else None

    # --- writing (each call is one short transaction) -------------------------------------

    def record_files(self, files: Sequence[tuple[str, str, int, int]],
                     metas: dict[str, ImageMeta] | None = None) -> None:
        """Upsert ``(path, content_hash, size, mtime_ns)`` rows and new content metadata."""
        seen = now_iso()
        with transaction(self.db.conn):
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO files (path, content_hash, size, mtime_ns, seen_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(db_path(p), h, s, m, seen) for p, h, s, m in files],
            )
            if metas:
                self.db.conn.executemany(
                    "INSERT OR REPLACE INTO images (content_hash, width, height, taken_at, "
                    "camera) VALUES (?, ?, ?, ?, ?)",
                    [(h, m.width, m.height, m.taken_at, m.camera) for h, m in metas.items()],
                )

    def record_scores(self, model: str, scores: Iterable[tuple[str, float]],
                      features: Iterable[tuple[str, bytes]] = ()) -> None:
        """Store raw model outputs ``(content_hash, score)`` for ``model``.

        ``features``: ``(content_hash, vector)`` pairs from the same forward pass, written
        in the same transaction.
        """
        scored_at = now_iso()
        with transaction(self.db.conn):
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO scores (content_hash, model, score, scored_at) "
                "VALUES (?, ?, ?, ?)",
                [(h, model, float(s), scored_at) for h, s in scores],
            )
            vectors = [(h, model, v) for h, v in features]
            if vectors:
                self.db.conn.executemany(
                    "INSERT OR REPLACE INTO features (content_hash, model, vector) "
                    "VALUES (?, ?, ?)", vectors)

    def remember_checkpoint(self, setup: CheckpointSetup, model: str) -> None:
        """Record the model id ``setup`` scores under (see :meth:`checkpoint_model`)."""
        with transaction(self.db.conn):
            self.db.conn.execute(
                "INSERT OR REPLACE INTO checkpoints (path, device, precision, engine, "
                "preprocessing, size, mtime_ns, model, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*_setup_row(setup), model, now_iso()],
            )

    # --- maintenance ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Row counts, the models with scores, and the size on disk (db + WAL)."""
        counts = {name: self.db.execute(f"SELECT count(*) FROM [{name}]").fetchone()[0]
                  for name in ("files", "images", "scores", "checkpoints", "features")}
        models = []
        for model, n, last in self.db.execute(
            "SELECT model, count(*), max(scored_at) FROM scores GROUP BY model ORDER BY model"
        ).fetchall():
            paths = [path_from_db(r[0]) for r in self.db.execute(
                "SELECT DISTINCT path FROM checkpoints WHERE model = ? ORDER BY path", [model])]
            models.append({"model": model, "scores": n, "last_scored": last,
                           "checkpoints": paths})
        return {
            "path": str(self.path) if self.path else ":memory:",
            "size_bytes": self.size_bytes(),
            "rows": counts,
            "models": models,
            "migrations": [r[0] for r in self.db.execute(
                "SELECT name FROM _memo_migrations ORDER BY name")],
        }

    def size_bytes(self) -> int:
        if self.path is None:
            return 0
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.stat(f"{self.path}{suffix}").st_size
            except FileNotFoundError:
                pass
        return total

    def prune(self, exists: Callable[[str], bool] = os.path.exists,
              dry_run: bool = False) -> dict[str, int]:
        """Forget files that no longer exist, then scores and metadata no file refers to.

        Checkpoint records whose file is gone are dropped too. Returns the counts removed
        (with ``dry_run``: that would be removed; the transaction is rolled back).
        """
        gone = [p for (p,) in self.db.execute("SELECT path FROM files")
                if not exists(path_from_db(p))]
        gone_ckpt = [p for (p,) in self.db.execute("SELECT path FROM checkpoints")
                     if not exists(path_from_db(p))]
        counts = {"files": len(gone), "checkpoints": len(gone_ckpt)}
        try:
            with transaction(self.db.conn) as conn:
                for table, paths in (("files", gone), ("checkpoints", gone_ckpt)):
                    for chunk in _chunks(paths):
                        conn.execute(f"DELETE FROM {table} WHERE path IN "
                                     f"({','.join('?' * len(chunk))})", chunk)
                for table in ("scores", "images", "features"):
                    counts[table] = conn.execute(
                        f"DELETE FROM {table} WHERE content_hash NOT IN "
                        "(SELECT content_hash FROM files)").rowcount
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return counts

    def vacuum(self) -> None:
        """Give the space freed by pruning back to the file system."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.conn.execute("VACUUM")
