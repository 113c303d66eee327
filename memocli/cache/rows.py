"""What the cache's rows hold, as records, and how values are stored and read back.

Reading is forgiving: a value of the wrong type (from a damaged or hand-edited cache, or a
merged one) reads as unknown, and the photo is looked at again, instead of an error.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime, timezone
from typing import Any

from ..kinds import KINDS

#: Rows per ``IN (...)`` query, well under SQLite's variable limit.
QUERY_CHUNK = 500


def chunks(items: Sequence[Any], size: int = QUERY_CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of ``size``, one ``IN (...)`` query each."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def now_iso() -> str:
    """The current UTC time as ISO 8601 (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ImageMeta:
    """What belongs to a file's content: upright size and EXIF facts (None when unknown)."""

    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera: str | None = None
    kind: str | None = None  # photo, icon, blank, screenshot, drawing (memocli.kinds)


@dataclass(frozen=True)
class CheckpointSetup:
    """A checkpoint file as of one stat, scored with one ``--device``, ``--precision`` and
    ``--engine`` (as the user asked, each ``auto`` with what it resolves by on this machine:
    :func:`memocli.setup_key.setup_keys`) under one preprocessing version."""

    path: str  # absolute
    device: str
    precision: str
    engine: str
    preprocessing: int
    size: int
    mtime_ns: int


def setup_row(setup: CheckpointSetup) -> list:
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
    model: str | None = None  # the model id whose score ``score`` is


@dataclass(frozen=True)
class KnownContent:
    """What the cache holds for one content hash: this model's score, the metadata."""

    score: float | None
    meta: ImageMeta | None
    model: str | None = None  # the model id whose score ``score`` is


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


def _date_or_none(value: Any) -> str | None:
    """A stored ISO date (and time): None unless it is a real one. Caches written before
    dates were checked may hold ``2019-02-30`` or ``T24:00:00`` from a camera's EXIF."""
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return value


def stored_meta(width: Any, height: Any, taken_at: Any, camera: Any,
                kind: Any = None) -> ImageMeta:
    """An ``images`` row as :class:`ImageMeta`; values of the wrong type, and dates that are
    no real date, read as unknown."""
    return ImageMeta(_int_or_none(width), _int_or_none(height), _date_or_none(taken_at),
                     _text_or_none(camera), kind if kind in KINDS else None)


def joined_meta(row: Sequence[Any], has_meta: bool) -> ImageMeta | None:
    """The ``images`` columns of a LEFT JOIN as :class:`ImageMeta`, None when unmatched."""
    return stored_meta(*row) if has_meta else None


def decode_text(raw: bytes) -> str:
    """Stored text as str; bytes that are not UTF-8 (a merged cache's) as surrogates, which
    :mod:`memocli.escape` shows as ``\\xNN``, instead of an error on reading."""
    return raw.decode("utf-8", "surrogateescape")


def usual_length(counts: Mapping[int, int]) -> int | None:
    """The byte length of a model's feature vectors, from how many stored vectors have each
    length: the commonest even, non-zero one (a tie: the longer). Every vector of one model
    has its length, so the others are damaged or truncated (a damaged shard merged in)."""
    usable = {n: c for n, c in counts.items() if n > 0 and n % 2 == 0}
    return max(usable, key=lambda n: (usable[n], n)) if usable else None


def well_formed_vectors(stored: Mapping[str, Any]) -> tuple[dict[str, bytes], dict[str, str]]:
    """One model's stored feature vectors by content hash, split into those of the model's
    length (:func:`usual_length`) and, for the others, what is wrong with them."""
    lengths = Counter(len(v) for v in stored.values() if isinstance(v, bytes))
    length = usual_length(lengths)
    good: dict[str, bytes] = {}
    problems: dict[str, str] = {}
    for content_hash, vector in stored.items():
        if not isinstance(vector, bytes):
            problems[content_hash] = f"a {type(vector).__name__}, not bytes"
        elif len(vector) != length:
            problems[content_hash] = f"{len(vector)} bytes where this model's have {length}"
        else:
            good[content_hash] = vector
    return good, problems
