"""Finding the photos to score: recursive, by extension, one ``stat`` per file.

Folders are walked with ``os.scandir``; symbolic links are followed, but a folder already
visited (same device and inode) is never entered twice, so link loops end, and a file
reached by two paths (a link, a hard link) is listed once.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterable
from dataclasses import dataclass, field

from .files import os_reason

#: Extensions memo looks for in folders (compared case-insensitively). A file named
#: explicitly on the command line is taken whatever its name.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})


@dataclass(frozen=True)
class FoundFile:
    """One image file to score.

    Attributes:
        path: as shown to the user: the folder they named joined with the file's place in it.
        abspath: absolute and normalised (links not resolved): the cache's ``files`` key.
        size: bytes.
        mtime_ns: modification time in nanoseconds.
        relpath: the file's place in the folder it was found under, ``/``-separated (its
            name for a file named on its own): the same wherever that folder is mounted.
    """

    path: str
    abspath: str
    size: int
    mtime_ns: int
    relpath: str


@dataclass
class ScanResult:
    """The files found (sorted by path) and ``(path, reason)`` for what could not be read."""

    files: list[FoundFile] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    """True when ``name`` ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


class _Walker:
    def __init__(self, include_hidden: bool):
        self.include_hidden = include_hidden
        self.result = ScanResult()
        self._seen_dirs: set[tuple[int, int]] = set()
        self._seen_files: set[tuple[int, int]] = set()

    def add_file(self, path: str, st: os.stat_result, relpath: str) -> None:
        if st.st_size == 0:
            self.result.problems.append((path, "empty file (0 bytes)"))
            return
        key = (st.st_dev, st.st_ino)
        if st.st_ino and key in self._seen_files:
            return
        self._seen_files.add(key)
        self.result.files.append(
            FoundFile(path, os.path.abspath(path), st.st_size, st.st_mtime_ns, relpath))

    def walk(self, top: str, top_stat: os.stat_result) -> None:
        stack = [(top, "", top_stat)]
        while stack:
            folder, rel_folder, st = stack.pop()
            key = (st.st_dev, st.st_ino)
            if st.st_ino and key in self._seen_dirs:
                continue  # a link loop, or a folder reached twice
            self._seen_dirs.add(key)
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as e:
                self.result.problems.append((folder, f"cannot list folder: {os_reason(e)}"))
                continue
            subfolders = []
            for entry in entries:
                if entry.name.startswith(".") and not self.include_hidden:
                    continue
                path = entry.name if folder == os.curdir else os.path.join(folder, entry.name)
                rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
                try:
                    if entry.is_dir():
                        subfolders.append((path, rel, entry.stat()))
                        continue
                    if not is_image_name(entry.name):
                        continue
                    entry_stat = entry.stat()
                except FileNotFoundError:
                    if entry.is_symlink():
                        self.result.problems.append((path, "broken symbolic link"))
                    continue  # else: deleted while we looked
                except OSError as e:
                    self.result.problems.append((path, os_reason(e)))
                    continue
                if stat_mod.S_ISREG(entry_stat.st_mode):
                    self.add_file(path, entry_stat, rel)
            stack.extend(reversed(subfolders))


def scan(inputs: Iterable[str | os.PathLike], include_hidden: bool = False) -> ScanResult:
    """Find the images under ``inputs`` (files and folders).

    Args:
        inputs: files (taken as they are, whatever their extension) and folders (searched
            recursively for :data:`IMAGE_EXTENSIONS`).
        include_hidden: also enter hidden folders and take hidden files (names starting
            with a dot) found inside folders.
    """
    walker = _Walker(include_hidden)
    for raw in inputs:
        path = os.path.normpath(os.fspath(raw))
        try:
            st = os.stat(path)
        except OSError as e:
            walker.result.problems.append((path, os_reason(e)))
            continue
        if stat_mod.S_ISDIR(st.st_mode):
            walker.walk(path, st)
        elif stat_mod.S_ISREG(st.st_mode):
            walker.add_file(path, st, os.path.basename(path))
        else:
            walker.result.problems.append((path, "not a regular file or folder"))
    walker.result.files.sort(key=lambda f: f.path)
    return walker.result
