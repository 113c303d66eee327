"""Opening the cache's SQLite file and writing to it: read-only fallback, WAL, the busy
timeout, one-transaction writes."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0


def not_writable(path: Path) -> bool:
    """True for an existing cache file memo may not write (it or its folder is read-only)."""
    return path.is_file() and not (os.access(path, os.W_OK)
                                   and os.access(path.parent, os.W_OK))


def connect(path: Path | None, read_only: bool, timeout: float) -> sqlite3.Connection:
    """A connection to the cache at ``path`` (None: in memory), its folder made if needed.

    ``read_only`` opens the file read-only, and as immutable where WAL's ``-shm`` file cannot
    be created (a read-only folder, which nobody can write either).
    """
    if path is None:
        return sqlite3.connect(":memory:")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(str(path), timeout=timeout)
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=timeout)


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
