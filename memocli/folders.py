"""Where memo keeps its own files: the score cache and the model folder.

``$MEMO_HOME`` puts both in one folder. Without it they go in the platform's user folders,
as :mod:`platformdirs` names them (the table is in ``docs/scoring.md``): on Linux
``$XDG_CACHE_HOME/memo`` (``~/.cache/memo``) for the cache and ``$XDG_DATA_HOME/memo``
(``~/.local/share/memo``) for models; on macOS ``~/Library/Caches/memo`` and
``~/Library/Application Support/memo``; on Windows ``%LOCALAPPDATA%\\memo\\Cache`` and
``%LOCALAPPDATA%\\memo``.

Earlier versions of memo used the Linux folders on every platform. Where such a folder holds
memo's files and the platform's folder does not, the older one is kept (:func:`kept_folder`),
so upgrading moves no one's cache or models.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "memo"


def memo_home() -> Path | None:
    """``$MEMO_HOME`` (``~`` expanded), or None when it is not set."""
    home = os.environ.get("MEMO_HOME")
    return Path(home).expanduser() if home else None


def kept_folder(platform_folder: Path, older_folder: Path, name: str) -> Path:
    """``platform_folder``, unless only ``older_folder`` holds ``name`` (a file or folder
    an older memo made there): then ``older_folder``, where that memo's files are."""
    if not (platform_folder / name).exists() and (older_folder / name).exists():
        return older_folder
    return platform_folder


def _older(variable: str, *default: str) -> Path:
    """The folder earlier versions of memo used on every platform: ``$variable/memo``, else
    ``~/<default>/memo``."""
    base = os.environ.get(variable)
    return (Path(base).expanduser() if base else Path.home().joinpath(*default)) / APP


def default_cache_path() -> Path:
    """Where the cache lives unless ``--cache`` says otherwise: ``$MEMO_HOME/memo.db``,
    else ``memo.db`` in the user cache folder (Linux: ``~/.cache/memo/memo.db``)."""
    home = memo_home()
    if home:
        return home / "memo.db"
    folder = kept_folder(platformdirs.user_cache_path(APP, appauthor=False),
                         _older("XDG_CACHE_HOME", ".cache"), "memo.db")
    return folder / "memo.db"


def user_weights_dir() -> Path:
    """Where opt-in models go: ``$MEMO_HOME/weights``, else ``weights`` in the user data
    folder (Linux: ``~/.local/share/memo/weights``)."""
    home = memo_home()
    if home:
        return home / "weights"
    folder = kept_folder(platformdirs.user_data_path(APP, appauthor=False),
                         _older("XDG_DATA_HOME", ".local", "share"), "weights")
    return folder / "weights"
