"""Library warnings about a photo (Pillow's "Corrupt EXIF data"), said with the photo's name.

Pillow warns through :mod:`warnings`, which prints its own source file and line and not
the photo. Code that reads a photo runs inside :func:`reading` ``(path)`` (a thread-local
note, so concurrent decoding threads are told apart); once :func:`install` has run (the
CLI does), such a warning becomes one log line ``PATH: message``, once per photo and
message.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike

from .escape import for_terminal

log = logging.getLogger(__name__)
_current = threading.local()
_said: set[tuple[str, str]] = set()
_said_lock = threading.Lock()
_original_showwarning = warnings.showwarning


@contextmanager
def reading(path: str | PathLike) -> Iterator[None]:
    """Attribute warnings raised inside (in this thread) to the photo at ``path``."""
    previous = getattr(_current, "path", None)
    _current.path = path
    try:
        yield
    finally:
        _current.path = previous


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    path = getattr(_current, "path", None)
    if path is None:
        _original_showwarning(message, category, filename, lineno, file, line)
        return
    text = " ".join(str(message).split())
    key = (str(path), text)
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    log.warning("%s: %s", for_terminal(path), text)


def install() -> None:
    """Route warnings raised while reading a photo to :func:`_show` (each photo's, not only
    the first one's: Pillow's warnings are set to show every time)."""
    warnings.showwarning = _show
    warnings.filterwarnings("always", category=UserWarning, module=r"PIL\.")
