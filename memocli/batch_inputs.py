"""What ``memo batch`` scores: SOURCE as rows of ``(path, size, mtime_ns)``, and each
photo's bytes read once for its hash, its facts and its pixels (inside Ray tasks).

SOURCE is one of:

* a local folder or file: found by :func:`memocli.scan.scan`, as ``memo score`` finds them;
* a glob (``/archive/2019/**/*.jpg``, ``s3://bucket/photos/*.heic``);
* a URI of a folder (``s3://bucket/photos``, ``gs://...``), listed through pyarrow's file
  systems (S3, GCS, Azure, HDFS; fsspec ones through pyarrow's wrapper);
* a manifest: a ``.parquet`` or ``.csv`` file with a ``path`` column (and optionally
  ``size`` and ``mtime_ns``), read by Ray in parallel, so 10^8 objects need not be listed.
  Relative local paths in a manifest are relative to the manifest's folder.

Local paths are absolute in the output (they are the score cache's ``files`` keys once
merged, see :mod:`memocli.parquet_import`); URIs are kept as written.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .scan import not_photo_kind, scan

MANIFEST_SUFFIXES = (".parquet", ".csv")
_GLOB_CHARS = "*?["


def is_uri(path: str) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: a path for pyarrow's file systems."""
    return "://" in path


@dataclass
class Listing:
    """Photos found on the driver (``rows``: path, size, mtime_ns) and why others were not
    taken (``problems``: path, reason)."""

    rows: dict[str, list] = field(default_factory=lambda: {"path": [], "size": [],
                                                           "mtime_ns": []})
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str, size: int, mtime_ns: int) -> None:
        if size == 0:
            self.problems.append((path, "empty file (0 bytes)"))
            return
        for key, value in (("path", path), ("size", size), ("mtime_ns", mtime_ns)):
            self.rows[key].append(value)

    def __len__(self) -> int:
        return len(self.rows["path"])


def is_manifest(source: str) -> bool:
    """Whether SOURCE names a manifest file (by its suffix) rather than photos."""
    return source.lower().endswith(MANIFEST_SUFFIXES) and not any(
        c in source for c in _GLOB_CHARS)


def list_source(source: str, include_hidden: bool = False) -> Listing:
    """The photos of a folder, file, glob or URI (not a manifest: see :func:`read_manifest`)."""
    listing = Listing()
    if is_uri(source):
        _list_uri(source, listing, include_hidden)
        return listing
    paths = sorted(glob.glob(source, recursive=True)) if any(
        c in source for c in _GLOB_CHARS) else [source]
    found = scan(paths, include_hidden=include_hidden)
    for f in found.files:
        listing.add(f.abspath, f.size, f.mtime_ns)
    listing.problems += found.problems
    if not paths:
        listing.problems.append((source, "no file matches this pattern"))
    return listing


def _list_uri(source: str, listing: Listing, include_hidden: bool) -> None:
    """List a URI folder (or the folder above a glob's first wildcard) recursively."""
    from pyarrow import fs as pafs

    pattern = source if any(c in source for c in _GLOB_CHARS) else None
    base = source
    if pattern:
        base = source[:min(source.index(c) for c in _GLOB_CHARS if c in source)]
        base = base.rsplit("/", 1)[0]
    filesystem, root = pafs.FileSystem.from_uri(base)
    scheme = source.split("://", 1)[0]
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.File:
        listing.add(source, info.size, info.mtime_ns)
        return
    if info.type == pafs.FileType.NotFound:
        listing.problems.append((source, "no such file or folder"))
        return
    for entry in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        uri = f"{scheme}://{entry.path}"
        hidden = any(part.startswith(".") for part in entry.path[len(root):].split("/"))
        if (entry.type != pafs.FileType.File or not_photo_kind(entry.base_name) is not None
                or (hidden and not include_hidden)
                or (pattern and not fnmatch.fnmatchcase(uri, pattern))):
            continue
        listing.add(uri, entry.size, entry.mtime_ns)


def read_manifest(source: str):
    """A Ray dataset of the manifest's paths (``path``; ``size`` and ``mtime_ns`` when it
    has them, else filled in by :func:`stat_rows` inside the tasks)."""
    import ray.data

    from .errors import MemoError

    if not is_uri(source) and not os.path.isfile(source):
        raise MemoError(f"{source}: no such manifest file")
    reader = ray.data.read_parquet if source.lower().endswith(".parquet") else ray.data.read_csv
    ds = reader(source)
    columns = ds.columns()
    if "path" not in columns:
        raise MemoError(f"{source}: a manifest needs a 'path' column (it has: "
                        f"{', '.join(columns) or 'none'})")
    keep = [c for c in ("path", "size", "mtime_ns") if c in columns]
    ds = ds.select_columns(keep)
    if keep != ["path", "size", "mtime_ns"]:
        base = "" if is_uri(source) else os.path.dirname(os.path.abspath(source))
        ds = ds.map_batches(stat_rows, fn_kwargs={"base": base}, batch_format="pyarrow")
    return ds


@functools.lru_cache(maxsize=64)
def _filesystem(uri_root: str):
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(uri_root)[0]


def _remote(uri: str):
    """``(filesystem, path inside it)`` of a URI (one file system per bucket and task)."""
    scheme, rest = uri.split("://", 1)
    bucket = rest.split("/", 1)[0]
    filesystem = _filesystem(f"{scheme}://{bucket}" if scheme != "file" else "file:///")
    return filesystem, rest if scheme != "file" else "/" + rest.lstrip("/")


def stat_rows(batch, base: str = ""):
    """A manifest's rows with ``size`` and ``mtime_ns`` (-1 when the file cannot be
    reached: the scoring step then says why)."""
    import pyarrow as pa

    paths, sizes, mtimes = [], [], []
    for raw in batch.column("path").to_pylist():
        path = str(raw)
        if not is_uri(path) and base:
            path = os.path.normpath(os.path.join(base, path))
        try:
            if is_uri(path):
                filesystem, inner = _remote(path)
                info = filesystem.get_file_info(inner)
                size, mtime = (info.size, info.mtime_ns) if info.size is not None else (-1, -1)
            else:
                st = os.stat(path)
                size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size = mtime = -1
        paths.append(path)
        sizes.append(size)
        mtimes.append(mtime)
    return pa.table({"path": paths, "size": pa.array(sizes, pa.int64()),
                     "mtime_ns": pa.array(mtimes, pa.int64())})


class LocalCopy:
    """A photo as a local file for memo's decoders: the file itself, or for a URI its
    bytes copied to a temporary file with the same suffix (deleted on exit); ``sha256``
    is the content's hash."""

    def __init__(self, path: str):
        self.path = path
        self.local = path
        self.sha256 = ""
        self._temp: Any = None

    def __enter__(self) -> LocalCopy:
        if not is_uri(self.path):
            from .files import hash_file

            self.sha256 = hash_file(self.path)
            return self
        filesystem, inner = _remote(self.path)
        digest = hashlib.sha256()
        suffix = os.path.splitext(inner)[1]
        self._temp = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
        try:
            with self._temp as out, filesystem.open_input_stream(inner) as stream:
                while block := stream.read(1 << 20):
                    digest.update(block)
                    out.write(block)
        except BaseException:
            self.__exit__()
            raise
        self.local, self.sha256 = self._temp.name, digest.hexdigest()
        return self

    def __exit__(self, *exc) -> None:
        if self._temp is not None:
            os.unlink(self._temp.name)
