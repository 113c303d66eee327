#!/usr/bin/env python
"""Cost of ``memo cache merge`` on generated shard caches.

Writes ``--shards`` caches holding ``--rows`` photos in all (a ``files``, ``images`` and
``scores`` row each, plus a ``features`` vector of ``--vector-bytes`` when the cache has
that table), merges them into a new cache, then merges them again (nothing to add), and
prints the time of each pass, rows per second and the merged cache's bytes per photo.
Record results in ``docs/scaling.md``.

Usage:
    python benchmarks/cache_merge.py [--rows 100000] [--shards 4] [--vector-bytes 4096]
                                     [--work /tmp/memo-merge]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import time
from pathlib import Path

from memocli.cache import Cache, ImageMeta
from memocli.merge import merge_caches

MODEL = "vnet_r50-0123456789abcdef"


def make_shard(path: Path, first: int, count: int, vector_bytes: int) -> None:
    with Cache(path) as cache:
        has_features = "features" in cache.db.table_names()
        for start in range(first, first + count, 5000):
            ids = range(start, min(start + 5000, first + count))
            hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in ids]
            cache.record_files(
                [(f"/archive/{i % 20 + 2005}/{i % 365:03d}/IMG_{i:08d}.JPG", h, 4_000_000 + i,
                  1_600_000_000_000_000_000 + i) for i, h in zip(ids, hashes)],
                {h: ImageMeta(4000, 3000, "2019-07-14T10:11:12", "Canon EOS 5D") for h in hashes})
            scores = [(h, (i % 1000) / 1000) for i, h in zip(ids, hashes)]
            if has_features:
                cache.record_scores(MODEL, scores, [(h, os.urandom(vector_bytes)) for h in hashes])
            else:
                cache.record_scores(MODEL, scores)
        cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--vector-bytes", type=int, default=4096,
                        help="features vector size (ResNet-50: 2048 float16 = 4096)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/memo-merge"))
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    per = args.rows // args.shards
    shards = [args.work / f"shard{i + 1}.db" for i in range(args.shards)]
    for i, shard in enumerate(shards):
        make_shard(shard, i * per, per, args.vector_bytes)
    dest = args.work / "merged.db"
    for label in ("merge into a new cache", "merge again (nothing new)"):
        started = time.perf_counter()
        merge_caches(shards, dest)
        seconds = time.perf_counter() - started
        print(f"{label}: {seconds:.2f} s for {per * args.shards} photos "
              f"({per * args.shards / seconds:,.0f} photos/s)")
    with Cache(dest) as cache:
        cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = cache.size_bytes()
        tables = cache.db.table_names()
    print(f"merged cache: {size / 1e6:.1f} MB, {size / (per * args.shards):.0f} bytes/photo "
          f"(tables: {', '.join(sorted(tables))})")


if __name__ == "__main__":
    main()
