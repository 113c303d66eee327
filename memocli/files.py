"""Torch-free file helpers: content hashes, default weights, paths fit to print, atomic
writes and the wording of file errors."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import MemoError
from .escape import for_terminal


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
    """The checkpoint used when none is given: ``$MEMO_WEIGHTS`` (a model name or a path),
    else the default model installed with memo (see :mod:`memocli.catalog`)."""
    from .catalog import resolve_weights

    path = resolve_weights(None)
    if not path.is_file():
        raise MemoError(f"{path}: no such checkpoint file ($MEMO_WEIGHTS); "
                        "pass --weights CHECKPOINT or a model name from `memo models`")
    return path


def printable(path: str | os.PathLike) -> str:
    """``path`` fit for one terminal line (:func:`memocli.escape.for_terminal`)."""
    return for_terminal(os.fspath(path))


def decode_threads() -> int:
    """Threads for decoding and rendering images (PIL and OpenCV release the GIL)."""
    return max(1, min(4, os.cpu_count() or 1))


def os_reason(error: OSError) -> str:
    """Why a file operation failed, in the words every memo message uses."""
    if isinstance(error, FileNotFoundError):
        return "no such file or folder"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    return error.strerror or str(error) or type(error).__name__


def read_failure(error: OSError) -> str:
    """Why a photo found by the scan could not be read (:func:`os_reason`, said of a photo)."""
    if isinstance(error, FileNotFoundError):
        return "file vanished before it could be read"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not an image"
    if isinstance(error, PermissionError):
        return os_reason(error)
    return f"cannot read file: {os_reason(error)}"


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO]:
    """A file that replaces ``path`` only once it is complete and on disk.

    Writes a temporary file beside ``path`` (its folder is created), fsyncs it and renames it
    over ``path``; on any error, Ctrl-C included, the temporary file goes and ``path`` is as
    it was. The temporary file is opened with ``open`` (not ``mkstemp``, whose 0600 mode
    would make the output private), so ``path`` gets the permissions the umask gives.
    ``mode`` is ``wb`` or ``w`` (then ``encoding`` and ``newline`` apply).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
