"""Splitting a photo library between machines or jobs: ``memo score --shard I/N``.

A file belongs to shard ``1 + sha1(relpath) mod N``, ``relpath`` being its place in the
folder it was found under (:attr:`memocli.scan.FoundFile.relpath`). No file is read and
the mount point does not count, so N jobs given the same tree score disjoint sets that
together cover it, each about 1/N of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from .scan import FoundFile


@dataclass(frozen=True)
class Shard:
    """The ``index``-th (1-based) of ``count`` shards."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``'3/16'`` -> ``Shard(3, 16)``; ValueError saying what is wrong otherwise."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"'{text}' is not I/N, e.g. 3/16 (the 3rd of 16 shards)") from None
        if not 1 <= index <= count:
            raise ValueError(f"'{text}': need 1 <= I <= N")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, relpath: str) -> bool:
        digest = hashlib.sha1(relpath.encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def select(self, files: Sequence[FoundFile]) -> list[FoundFile]:
        """The files of this shard, in their order."""
        return [f for f in files if self.holds(f.relpath)]
