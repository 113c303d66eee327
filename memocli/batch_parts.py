"""``memo batch``'s output: Parquet part files in DEST, their columns, and what a re-run
learns from them.

Every run adds part files (``<run>_<block>-<i>.parquet``) to DEST; none is ever rewritten,
so an interrupted run loses at most the parts it was writing. A part cut short (no Parquet
footer) is passed over with a warning by every reader here, and its photos count as not
scored. ``DEST/ranked/`` (``--rank``) is derived from the parts and rewritten on each run;
the readers here do not look inside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

#: One row per photo. ``sha256``, scores, size and facts are null when the photo could not
#: be read or decoded, and ``error`` says why; ``kind`` is photo, icon, blank, screenshot
#: or drawing (:mod:`memocli.kinds`); ``score`` is what users see
#: (:func:`memocli.score.display_score`), ``raw_score`` the model's output (cache merges
#: take it).
SCHEMA = pa.schema([
    ("sha256", pa.string()),
    ("path", pa.string()),
    ("size", pa.int64()),
    ("mtime_ns", pa.int64()),
    ("score", pa.float64()),
    ("raw_score", pa.float64()),
    ("model_id", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("taken_at", pa.string()),
    ("camera", pa.string()),
    ("kind", pa.string()),
    ("error", pa.string()),
])
RESUME_KEY = ("path", "size", "mtime_ns")
RANKED = "ranked"  # DEST/ranked/: the --rank output


def filesystem_of(dest: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's file system for DEST (a local folder or a URI) and DEST's path in it."""
    if "://" in dest:
        return pafs.FileSystem.from_uri(dest)
    return pafs.LocalFileSystem(), os.path.abspath(dest)


@dataclass
class Parts:
    """DEST's readable part files (``readable``: path -> rows) and those cut short."""

    filesystem: pafs.FileSystem
    root: str
    readable: dict[str, int] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.readable.values())


def list_parts(dest: str) -> Parts:
    """The part files directly in DEST (none if DEST does not exist yet); each file's
    footer is read to tell whole parts from parts an interrupted run cut short."""
    filesystem, root = filesystem_of(dest)
    parts = Parts(filesystem, root)
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        return parts
    for info in filesystem.get_file_info(pafs.FileSelector(root)):
        if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet"):
            continue
        try:
            parts.readable[info.path] = pq.read_metadata(info.path, filesystem=filesystem
                                                         ).num_rows
        except (OSError, pa.ArrowInvalid):
            parts.broken.append(info.path)
    return parts


def dataset_of(parts: Parts, columns: list[str] | None = None):
    """The rows of ``parts``' readable files as one Ray dataset (None when there are none),
    in :data:`SCHEMA` (a column an older part lacks is null).

    Each task reads whole part files with pyarrow: the files are known already (their
    footers were read), and Ray's own Parquet reader lists paths again in threads that
    import fsspec's HTTP module, which fails where fsspec is installed without aiohttp.
    """
    import ray.data

    if not parts.readable:
        return None
    files = ray.data.from_items([{"part": p} for p in sorted(parts.readable)])
    return files.map_batches(_read_parts, batch_size=1, batch_format="pyarrow",
                             fn_kwargs={"filesystem": parts.filesystem,
                                        "columns": columns or SCHEMA.names})


def _read_parts(batch: pa.Table, filesystem: pafs.FileSystem, columns: list[str]) -> pa.Table:
    """The ``columns`` of the part files named in ``batch``, in :data:`SCHEMA`'s types."""
    tables = []
    for part in batch.column("part").to_pylist():
        with pq.ParquetFile(part, filesystem=filesystem) as f:
            table = f.read(columns=[c for c in columns if c in f.schema_arrow.names])
        tables.append(pa.table({c: table.column(c) if c in table.column_names
                                else pa.nulls(len(table), SCHEMA.field(c).type)
                                for c in columns}).cast(pa.schema([SCHEMA.field(c)
                                                                   for c in columns])))
    return pa.concat_tables(tables)


def done_keys(parts: Parts, model_id: str):
    """The resume keys (:data:`RESUME_KEY`) DEST holds for ``model_id``: the rows a re-run
    leaves out (an anti-join), error rows included (the file is unchanged)."""
    ds = dataset_of(parts, [*RESUME_KEY, "model_id"])
    if ds is None:
        return None
    return ds.map_batches(_keys_of, fn_kwargs={"model_id": model_id}, batch_format="pyarrow")


def _keys_of(batch: pa.Table, model_id: str) -> pa.Table:
    """The resume keys of ``batch``'s rows made by ``model_id``."""
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch.column("model_id"), model_id)).select(list(RESUME_KEY))


def new_parts(before: Parts, after: Parts) -> dict[str, int]:
    """The part files a run wrote (path -> rows)."""
    return {p: n for p, n in after.readable.items() if p not in before.readable}


def error_count(parts: dict[str, int], filesystem: pafs.FileSystem) -> int:
    """Rows with an error in ``parts``, from the files' column statistics (no data read)."""
    errors = 0
    column = SCHEMA.get_field_index("error")
    for path, rows in parts.items():
        meta = pq.read_metadata(path, filesystem=filesystem)
        stats = [meta.row_group(g).column(column).statistics
                 for g in range(meta.num_row_groups)]
        if all(s is not None and s.has_null_count for s in stats):
            errors += rows - sum(s.null_count for s in stats)
        else:
            table = pq.read_table(path, filesystem=filesystem, columns=["error"])
            errors += rows - table.column("error").null_count
    return errors


def first_errors(parts: dict[str, int], filesystem: pafs.FileSystem,
                 limit: int = 10) -> list[tuple[str, str]]:
    """Up to ``limit`` ``(path, error)`` pairs from ``parts``, to show on the terminal."""
    found: list[tuple[str, str]] = []
    for path in parts:
        if len(found) >= limit:
            break
        table = pq.read_table(path, filesystem=filesystem, columns=["path", "error"])
        for p, e in zip(table.column("path").to_pylist(), table.column("error").to_pylist(),
                        strict=True):
            if e is not None and len(found) < limit:
                found.append((p, e))
    return found
