"""``memo cache merge DEST``: bring ``memo batch``'s Parquet output into a score cache.

Scores go in keyed by content (``scores``: sha256 and model id, the raw score), so
``memo export``, ``memo report`` and bursts find them for any copy of the photo; image
facts go to ``images``, and local paths to ``files`` (a later scan of the same unchanged
files then reads no byte). As with caches, rows the destination has are kept, a kept
score that differs by more than the tolerance is a conflict, and the whole source goes in
as one transaction. Error rows (photos that could not be read) carry no score and are
left out; a score that is not a finite number is refused. Features vectors are not in
the Parquet files (bursts compute them once when first asked). Torch-free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .cache import Cache
from .cache.connection import transaction
from .cache.rows import db_path, now_iso
from .errors import MemoError

_CHUNK = 500  # rows per lookup of kept scores (SQLite's variable limit is far above)
_COLUMNS = ["sha256", "path", "size", "mtime_ns", "raw_score", "model_id", "width",
            "height", "taken_at", "camera", "error"]
_OPTIONAL = ["kind"]  # not in the first memo batch outputs: then described on next scan


def is_parquet_source(source: str | os.PathLike) -> bool:
    """A ``memo batch`` output: a folder of Parquet parts, or one ``.parquet`` file."""
    return Path(source).is_dir() or str(source).lower().endswith(".parquet")


def _rows(source: str) -> Iterator[list[dict]]:
    """The source's rows in chunks, from every whole part file (parts cut short by an
    interrupted run are passed over: their photos were not all written)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MemoError(f"{source}: reading memo batch output needs pyarrow: "
                        "pip install 'memocli[ray]'") from None
    from .batch_parts import list_parts

    if Path(source).is_dir():
        parts = list_parts(source)
        files, filesystem = sorted(parts.readable), parts.filesystem
        if not files:
            raise MemoError(f"{source}: neither a memo cache nor a memo batch output "
                            "(no whole Parquet file in it)")
    else:
        files, filesystem = [source], None
    for path in files:
        try:
            reader = pq.ParquetFile(path, filesystem=filesystem) if filesystem else \
                pq.ParquetFile(path)
            missing = [c for c in _COLUMNS if c not in reader.schema_arrow.names]
        except OSError as e:
            raise MemoError(f"{path}: not a memo batch output ({e})") from None
        if missing:
            raise MemoError(f"{path}: not a memo batch output (no "
                            f"{', '.join(missing)} column)")
        optional = [c for c in _OPTIONAL if c in reader.schema_arrow.names]
        for batch in reader.iter_batches(batch_size=_CHUNK, columns=_COLUMNS + optional):
            yield [{"kind": None} | row for row in batch.to_pylist()]


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


@dataclass
class Imported:
    """Rows added per table, scores refused (not finite), and kept scores that differ
    (``examples``: content hash, model, kept score, the source's)."""

    added: dict[str, int] = field(default_factory=lambda: {"scores": 0, "images": 0,
                                                           "files": 0})
    refused: int = 0
    conflicts: int = 0
    examples: list[tuple[str, str, float, float]] = field(default_factory=list)


def import_parquet(cache: Cache, source: str | os.PathLike, tolerance: float,
                   max_examples: int = 10) -> Imported:
    """Merge one ``memo batch`` output into ``cache`` (see the module's docstring); keep
    ``max_examples`` conflicts to show (all are counted)."""
    report = Imported()
    added = report.added
    conn = cache.db.conn
    now = now_iso()
    with transaction(conn):
        for rows in _rows(str(source)):
            scored = [r for r in rows if r["error"] is None and r["sha256"]]
            good = [r for r in scored if _finite(r["raw_score"])]
            report.refused += len(scored) - len(good)
            _note_conflicts(conn, good, tolerance, report, max_examples)
            added["scores"] += conn.executemany(
                "INSERT OR IGNORE INTO scores (content_hash, model, score, scored_at) "
                "VALUES (?, ?, ?, ?)",
                [(r["sha256"], r["model_id"], r["raw_score"], now) for r in good]).rowcount
            added["images"] += conn.executemany(
                "INSERT OR IGNORE INTO images (content_hash, width, height, taken_at, camera, "
                "kind) VALUES (?, ?, ?, ?, ?, ?)",
                [(r["sha256"], r["width"], r["height"], r["taken_at"], r["camera"], r["kind"])
                 for r in good]).rowcount
            local = [r for r in good if "://" not in r["path"] and os.path.isabs(r["path"])]
            added["files"] += conn.executemany(
                "INSERT OR IGNORE INTO files (path, content_hash, size, mtime_ns, seen_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(db_path(r["path"]), r["sha256"], r["size"], r["mtime_ns"], now)
                 for r in local]).rowcount
    return report


def _note_conflicts(conn, rows: list[dict], tolerance: float, report: Imported,
                    max_examples: int) -> None:
    """Count the rows whose score the cache already holds with another value."""
    for model in {r["model_id"] for r in rows}:
        theirs = {r["sha256"]: r["raw_score"] for r in rows if r["model_id"] == model}
        marks = ", ".join("?" * len(theirs))
        kept = conn.execute(f"SELECT content_hash, score FROM scores WHERE model = ? AND "
                            f"content_hash IN ({marks})", [model, *theirs]).fetchall()
        for content_hash, score in kept:
            if isinstance(score, (int, float)) and abs(score - theirs[content_hash]) > tolerance:
                report.conflicts += 1
                if len(report.examples) < max_examples:
                    report.examples.append((content_hash, model, score, theirs[content_hash]))
