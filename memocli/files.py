"""Torch-free file helpers: content hashes, default weights, paths fit to print, atomic
writes and the wording of file errors."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
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
    problem = not_a_file(path)
    if problem:
        raise MemoError(f"{path}: {checkpoint_problem(problem)} ($MEMO_WEIGHTS); "
                        "pass --weights CHECKPOINT or a model name from `memo models`")
    return path


def checkpoint_problem(kind: str) -> str:
    """What to say of a checkpoint path that :func:`not_a_file` found to be ``kind``."""
    return "no such checkpoint file" if kind == "missing" else f"{kind}, not a checkpoint file"


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
    if isinstance(error, FileExistsError | NotADirectoryError) and error.filename:
        # mkdir met a file where a folder must be (``MEMO_HOME=some-file``): name it
        blocker = _nearest_existing(Path(os.fsdecode(error.filename)))
        if blocker.exists() and not blocker.is_dir():
            return f"{printable(blocker)} is a file, not a folder"
    return error.strerror or str(error) or type(error).__name__


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def not_a_file(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is no regular file: ``'a folder'``, ``'a named pipe
    (FIFO)'``, ... (``'missing'`` when nothing is there); None for a regular file (a
    symlink followed)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return os_reason(e)
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def read_failure(error: OSError) -> str:
    """Why a photo found by the scan could not be read (:func:`os_reason`, said of a photo)."""
    if isinstance(error, FileNotFoundError):
        return "file vanished before it could be read"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not an image"
    if isinstance(error, PermissionError):
        return os_reason(error)
    return f"cannot read file: {os_reason(error)}"


def output_target(path: str | os.PathLike) -> Path:
    """Where writing ``path`` lands: the final target of a symlink (a chain followed, a
    dangling link's target included), else ``path`` itself."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be used or created for outputs (naming it), or None."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        return (f"{printable(folder)} is a file, not a folder" if existing == folder else
                f"cannot create folder {printable(folder)}: {printable(existing)} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {printable(existing)}: permission denied"
    return None


def check_output_file(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output file memo could not write; the one policy of
    every output file (export, report, evaluate --csv, lr-find --plot), written with
    :func:`atomic_write`: missing folders are created, a symlink is written through to its
    target, a device or FIFO is written in place.

    Raises:
        MemoError: ``path`` is a folder, or its folder cannot be created or written in.
    """
    target = output_target(path)
    if target.is_dir():
        raise MemoError(f"{printable(path)}: is a folder; give the name of a file to write")
    if target.exists() and not target.is_file():
        return  # a device or FIFO: written in place, if it opens
    problem = _folder_problem(target.parent)
    if problem:
        raise MemoError(f"{printable(path)}: {problem}")


def check_output_folder(folder: str | os.PathLike) -> None:
    """Refuse, before any work, an output folder memo could not create or write in.

    Raises:
        MemoError: it exists and is not a folder, or cannot be created or written in.
    """
    problem = _folder_problem(Path(folder))
    if problem:
        raise MemoError(problem)


def make_output_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) for outputs, after :func:`check_output_folder`.

    Raises:
        MemoError: it exists and is not a folder, or cannot be created.
    """
    folder = Path(folder)
    check_output_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MemoError(f"{printable(folder)}: cannot create folder: {os_reason(e)}") from None
    return folder


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO]:
    """A file that replaces ``path`` only once it is complete and on disk.

    Writes a temporary file beside ``path`` (its folder is created), fsyncs it and renames it
    over ``path``; on any error, Ctrl-C included, the temporary file goes and ``path`` is as
    it was. A symlink is written through: its target is replaced, beside the target, and
    the link stays. A device or FIFO (``/dev/null``, ``/dev/stdout``) is written to
    directly. The temporary file's name is short (any ``path`` that fits the file system
    fits), and it is opened with ``open`` (not ``mkstemp``, whose 0600 mode would make the
    output private): a new file gets the permissions the umask gives, a replaced one keeps
    its own. ``mode`` is ``wb`` or ``w`` (then ``encoding`` and ``newline`` apply).

    Raises:
        IsADirectoryError: ``path`` is a folder (or a link to one), before anything is
            written.
    """
    target = output_target(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    try:
        kept_mode = stat.S_IMODE(target.stat().st_mode)
        regular = target.is_file()
    except FileNotFoundError:
        kept_mode, regular = None, True
    if not regular:
        with open(target, mode, encoding=encoding, newline=newline) as f:
            yield f
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".memo-{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), encoding=encoding, newline=newline) as f:
            if kept_mode is not None:
                os.chmod(f.fileno(), kept_mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
