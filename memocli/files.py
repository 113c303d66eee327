"""Torch-free file helpers: content hashes, default weights, paths fit to print."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import MemoError
from .escape import for_terminal

BUNDLED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "memo-vnet-r50.pt"


def hash_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's content, streamed."""
    with open(path, "rb") as f:
        if hasattr(hashlib, "file_digest"):  # Python 3.11+
            return hashlib.file_digest(f, "sha256").hexdigest()
        h = hashlib.sha256()
        while block := f.read(1 << 20):
            h.update(block)
        return h.hexdigest()


def default_weights_path() -> Path:
    """The checkpoint used when none is given: ``$MEMO_WEIGHTS``, else the bundled one."""
    env = os.environ.get("MEMO_WEIGHTS")
    path = Path(env) if env else BUNDLED_WEIGHTS
    if not path.is_file():
        raise MemoError(
            f"no default weights at {path}; pass --weights CHECKPOINT "
            "(train one with `memo train`)"
        )
    return path


def printable(path: str | os.PathLike) -> str:
    """``path`` fit for one terminal line (:func:`memocli.escape.for_terminal`)."""
    return for_terminal(os.fspath(path))


def decode_threads() -> int:
    """Threads for decoding and rendering images (PIL and OpenCV release the GIL)."""
    return max(1, min(4, os.cpu_count() or 1))
