"""The :class:`Cache` object: opening a cache, and every query and write memo makes on it.

Every write is one short transaction; readers never block writers (WAL), and a second
``memo`` process waits up to the busy timeout for the write lock instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import MemoError
from ..files import os_reason
from .connection import BUSY_TIMEOUT_S, connect, not_writable, transaction, use_wal
from .migrations import migrate, pending, schema_problem
from .rows import (
    CheckpointSetup,
    ImageMeta,
    KnownContent,
    KnownFile,
    chunks,
    db_path,
    decode_text,
    joined_meta,
    now_iso,
    path_from_db,
    setup_row,
    stored_meta,
    stored_score,
)
from .sqlite_errors import one_line_errors
from .variants import other_variants


def _absent_paths(stored: Iterable[tuple[str | bytes]]) -> dict[str, list[str | bytes]]:
    """Stored paths of files not here: ``missing`` (their folder is here, they are not)
    and ``unreachable`` (their folder is not here, or cannot be looked at)."""
    absent: dict[str, list[str | bytes]] = {"missing": [], "unreachable": []}
    for (value,) in stored:
        path = path_from_db(value)
        try:
            os.stat(path)
            continue
        except (FileNotFoundError, NotADirectoryError):
            here = os.path.isdir(os.path.dirname(path))
        except OSError:  # no permission, an I/O error: cannot tell
            here = False
        absent["missing" if here else "unreachable"].append(value)
    return absent


class _DryRun(Exception):
    """Rolls back a transaction whose counts were all that was wanted."""


@one_line_errors
class Cache:
    """The SQLite score cache. ``Cache(None)`` is a throw-away in-memory one (``--no-cache``).

    A cache file memo may not write (a read-only file or folder) is opened read-only: reads
    work, and the first write fails with a message saying so. Every SQLite error becomes a
    one-line :class:`MemoError` naming the cache (:func:`describe_sqlite_error`).
    """

    def __init__(self, path: str | os.PathLike | None, busy_timeout_s: float | None = None):
        self.path = Path(path) if path is not None else None
        self.busy_timeout_s = timeout = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.read_only = self.path is not None and not_writable(self.path)
        try:
            conn = connect(self.path, self.read_only, timeout)
        except OSError as e:
            raise MemoError(f"{self.path}: cannot create the cache: {os_reason(e)}") from None
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.text_factory = decode_text
        problem = schema_problem(conn)
        if problem:
            conn.close()
            raise MemoError(f"{self.path}: {problem}; use --cache with another path")
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        if self.read_only:
            if pending(self.db):
                raise MemoError(f"{self.path}: the cache is read-only and needs upgrading; "
                                "use --no-cache, or --cache with a writable path")
            return
        if self.path is not None:
            use_wal(conn, timeout)
            # WAL + NORMAL: a committed batch survives a crash of memo; only a power
            # cut can drop the last few commits, and never corrupts the file.
            self.db.execute("PRAGMA synchronous = NORMAL")
        migrate(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------

    def lookup_paths(self, paths: Sequence[str], model: str, variants: bool = False
                     ) -> dict[str, KnownFile]:
        """Stored ``files`` rows for ``paths`` (absolute), joined to ``model``'s scores;
        with ``variants``, another variant's score where ``model`` has none
        (:func:`~memocli.cache.variants.other_variants`).

        One indexed query per 500 paths: the whole cost of a cached re-scan.
        """
        found: dict[str, KnownFile] = {}
        for chunk in chunks([db_path(p) for p in paths]):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT f.path, f.size, f.mtime_ns, f.content_hash, s.score, "
                "i.content_hash IS NOT NULL, i.width, i.height, i.taken_at, i.camera, i.kind "
                "FROM files f "
                "LEFT JOIN scores s ON s.content_hash = f.content_hash AND s.model = ? "
                "LEFT JOIN images i ON i.content_hash = f.content_hash "
                f"WHERE f.path IN ({marks})",
                [model, *chunk],
            ).fetchall()
            for row in rows:
                path, score = path_from_db(row[0]), stored_score(row[4])
                found[path] = KnownFile(path, row[1], row[2], row[3], score,
                                        joined_meta(row[6:], row[5]),
                                        model if score is not None else None)
        if variants:
            others = other_variants(
                self.db, "scores", "score", [k.content_hash for k in found.values() if k.score is None],
                model, stored_score)
            for path, k in found.items():
                if k.content_hash in others:
                    other, score = others[k.content_hash]
                    found[path] = replace(k, score=score, model=other)
        return found

    def lookup_contents(self, hashes: Iterable[str], model: str, variants: bool = False
                        ) -> dict[str, KnownContent]:
        """What is stored for each content hash (hashes with nothing stored are left out);
        ``model`` and ``variants`` as in :meth:`lookup_paths`."""
        unique = list(dict.fromkeys(hashes))
        scores: dict[str, tuple[str, float]] = {}
        metas: dict[str, ImageMeta] = {}
        for chunk in chunks(unique):
            marks = ",".join("?" * len(chunk))
            for content_hash, score in self.db.execute(
                f"SELECT content_hash, score FROM scores WHERE model = ? "
                f"AND content_hash IN ({marks})", [model, *chunk]).fetchall():
                if stored_score(score) is not None:
                    scores[content_hash] = model, stored_score(score)
            for row in self.db.execute(
                f"SELECT content_hash, width, height, taken_at, camera, kind FROM images "
                f"WHERE content_hash IN ({marks})", chunk,
            ).fetchall():
                metas[row[0]] = stored_meta(*row[1:])
        if variants:
            scores.update(other_variants(
                self.db, "scores", "score", [h for h in unique if h not in scores], model, stored_score))
        return {h: KnownContent(scores[h][1] if h in scores else None, metas.get(h),
                                scores[h][0] if h in scores else None)
                for h in unique if h in scores or h in metas}

    def features(self, hashes: Iterable[str], model: str, variants: bool = False
                 ) -> dict[str, bytes]:
        """Stored feature vectors of ``model`` by content hash (missing ones left out);
        ``model`` and ``variants`` as in :meth:`lookup_paths`."""
        unique = list(dict.fromkeys(hashes))
        found: dict[str, bytes] = {}
        for chunk in chunks(unique):
            found.update(self.db.execute(
                f"SELECT content_hash, vector FROM features WHERE model = ? "
                f"AND content_hash IN ({','.join('?' * len(chunk))})", [model, *chunk],
            ).fetchall())
        if variants:
            others = other_variants(self.db, "features", "vector",
                                    [h for h in unique if h not in found], model)
            found.update({h: vector for h, (_, vector) in others.items()})
        return found

    def failures(self, hashes: Iterable[str], preprocessing: int) -> dict[str, str]:
        """Why each content in ``hashes`` could not be decoded, for those that failed under
        this preprocessing version (a newer decoder tries them again)."""
        found: dict[str, str] = {}
        for chunk in chunks(list(dict.fromkeys(hashes))):
            found.update(self.db.execute(
                f"SELECT content_hash, reason FROM failures WHERE preprocessing = ? "
                f"AND content_hash IN ({','.join('?' * len(chunk))})", [preprocessing, *chunk],
            ).fetchall())
        return found

    def checkpoint_model(self, setup: CheckpointSetup) -> str | None:
        """The model id recorded for this checkpoint setup, if the file is unchanged since."""
        row = self.db.execute(
            "SELECT model FROM checkpoints WHERE path = ? AND device = ? AND precision = ? "
            "AND engine = ? AND preprocessing = ? AND size = ? AND mtime_ns = ?",
            setup_row(setup),
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
                    "camera, kind) VALUES (?, ?, ?, ?, ?, ?)",
                    [(h, m.width, m.height, m.taken_at, m.camera, m.kind)
                     for h, m in metas.items()],
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

    def record_failures(self, preprocessing: int, failures: Sequence[tuple[str, str]]) -> None:
        """Remember ``(content_hash, reason)`` for contents that could not be decoded."""
        failed_at = now_iso()
        with transaction(self.db.conn):
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO failures (content_hash, preprocessing, reason, "
                "failed_at) VALUES (?, ?, ?, ?)",
                [(h, preprocessing, reason, failed_at) for h, reason in failures])

    def forget_failures(self, hashes: Sequence[str]) -> None:
        """Forget that these contents could not be decoded (they are about to be tried
        again: a new failure is recorded anew)."""
        with transaction(self.db.conn):
            for chunk in chunks(hashes):
                self.db.conn.execute("DELETE FROM failures WHERE content_hash IN "
                                     f"({','.join('?' * len(chunk))})", chunk)

    def remember_checkpoint(self, setup: CheckpointSetup, model: str) -> None:
        """Record the model id ``setup`` scores under (see :meth:`checkpoint_model`)."""
        with transaction(self.db.conn):
            self.db.conn.execute(
                "INSERT OR REPLACE INTO checkpoints (path, device, precision, engine, "
                "preprocessing, size, mtime_ns, model, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*setup_row(setup), model, now_iso()],
            )

    # --- maintenance ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Row counts, the models with scores, and the size on disk (db + WAL)."""
        counts = {name: self.db.execute(f"SELECT count(*) FROM [{name}]").fetchone()[0]
                  for name in ("files", "images", "scores", "checkpoints", "features",
                               "failures")}
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

    def prune(self, dry_run: bool = False, unreachable: bool = False) -> dict[str, int]:
        """Forget files that no longer exist, then scores and metadata no file refers to.

        A path is forgotten when its folder is here and the file is not. A path whose
        folder is not here (another machine's, merged in by ``memo cache merge``, or a disk
        not mounted) cannot be told from a deleted one: it is kept, with the scores it
        uses, unless ``unreachable``. Checkpoint records follow the same rule.

        Returns the counts removed (``files``: missing paths, ``unreachable``: paths in
        folders not here, removed only with ``unreachable``; ``scores``, ``images``,
        ``features``, ``checkpoints``) and ``kept_scores``: the scores kept only because
        unreachable paths use them. With ``dry_run`` they are what would go; the
        transaction is rolled back.
        """
        files = _absent_paths(self.db.execute("SELECT path FROM files"))
        ckpts = _absent_paths(self.db.execute("SELECT path FROM checkpoints"))
        counts = {"files": len(files["missing"]), "unreachable": len(files["unreachable"]),
                  "checkpoints": len(ckpts["missing"])}
        try:
            with transaction(self.db.conn) as conn:
                orphans = self._forget(conn, files["missing"], ckpts["missing"])
                conn.execute("SAVEPOINT unreachable")
                also = self._forget(conn, files["unreachable"], ckpts["unreachable"])
                if not unreachable:
                    conn.execute("ROLLBACK TO unreachable")
                conn.execute("RELEASE unreachable")
                counts["kept_scores"] = 0 if unreachable else also["scores"]
                for table, n in orphans.items():
                    counts[table] = n + also[table] * unreachable
                if unreachable:
                    counts["checkpoints"] += len(ckpts["unreachable"])
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return counts

    @staticmethod
    def _forget(conn: sqlite3.Connection, paths: list, checkpoint_paths: list) -> dict[str, int]:
        """Delete the ``files`` and ``checkpoints`` rows of these stored paths, then the
        scores, image facts, features and failures no file refers to; returns how many of
        those."""
        for table, rows in (("files", paths), ("checkpoints", checkpoint_paths)):
            for chunk in chunks(rows):
                conn.execute(f"DELETE FROM {table} WHERE path IN "
                             f"({','.join('?' * len(chunk))})", chunk)
        return {table: conn.execute(f"DELETE FROM {table} WHERE content_hash NOT IN "
                                    "(SELECT content_hash FROM files)").rowcount
                for table in ("scores", "images", "features", "failures")}

    def vacuum(self) -> None:
        """Give the space freed by pruning back to the file system."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.conn.execute("VACUUM")
