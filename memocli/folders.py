"""Where memo keeps its own files: the score cache and the model folder.

``$MEMO_HOME`` puts everything in one folder. Without it the cache goes in the user cache
folder and opt-in models in the user data folder, as :func:`default_cache_path` and
:func:`user_weights_dir` say.
"""

from __future__ import annotations

import os
from pathlib import Path


def memo_home() -> Path | None:
    """``$MEMO_HOME`` (``~`` expanded), or None when it is not set."""
    home = os.environ.get("MEMO_HOME")
    return Path(home).expanduser() if home else None


def default_cache_path() -> Path:
    """Where the cache lives unless ``--cache`` says otherwise.

    ``$MEMO_HOME/memo.db``, else ``$XDG_CACHE_HOME/memo/memo.db``, else
    ``~/.cache/memo/memo.db``.
    """
    home = memo_home()
    if home:
        return home / "memo.db"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "memo" / "memo.db"


def user_weights_dir() -> Path:
    """Where opt-in models go: ``$MEMO_HOME/weights``, else ``$XDG_DATA_HOME/memo/weights``,
    else ``~/.local/share/memo/weights``."""
    home = memo_home()
    if home:
        return home / "weights"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "memo" / "weights"
