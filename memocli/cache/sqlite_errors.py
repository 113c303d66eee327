"""SQLite's errors as one line naming the cache and what to do about it."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import MemoError
from .connection import BUSY_TIMEOUT_S


def describe_sqlite_error(error: sqlite3.Error, path: Path | None,
                          waited_s: float = BUSY_TIMEOUT_S) -> str:
    """One line for a failed cache operation, naming the cache and what to do about it."""
    where = str(path) if path is not None else "the in-memory cache"
    text = str(error)
    if "locked" in text or "busy" in text:
        return (f"{where}: the cache is locked by another process (waited {waited_s:g} s); "
                "run again when it is done, or use --cache OTHER.db")
    if "disk is full" in text:
        return (f"{where}: disk full while writing the cache; free some space and run again "
                "(what was saved before is kept)")
    if "readonly" in text or "read-only" in text:
        return (f"{where}: the cache is read-only; use --no-cache, or --cache with a "
                "writable path")
    if "not a database" in text or "malformed" in text:
        return (f"{where}: not a memo cache, or corrupt ({text}); delete it or use "
                "--cache OTHER.db")
    return f"{where}: cannot use the cache: {text}"


def _reporting_sqlite_errors(method: Callable) -> Callable:
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise MemoError(describe_sqlite_error(
                e, getattr(self, "path", None), getattr(self, "busy_timeout_s", BUSY_TIMEOUT_S),
            )) from None

    return guarded


def one_line_errors(cls: type) -> type:
    """Class decorator: every public method of ``cls`` (and ``__init__``) reports SQLite's
    errors as a :class:`MemoError` from :func:`describe_sqlite_error`."""
    for name, member in list(vars(cls).items()):
        if callable(member) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, _reporting_sqlite_errors(member))
    return cls
