"""Finding the photos to score: recursive, by extension, one ``stat`` per file.

Folders are walked with ``os.scandir``. A symbolic link to a folder is followed when its
target lies inside one of the folders given (or, with ``follow_links``, anywhere), and
never into the system's pseudo-filesystems (:data:`SYSTEM_FOLDERS`): a link to ``/`` or
``/proc`` in a photo folder does not make a scan list the whole machine. Links to files
are followed (an album of links to photos elsewhere), except into :data:`SYSTEM_FOLDERS`.
A folder already visited (same device and inode) is never entered twice, so link loops
end, and a file reached by two paths (a link, a hard link) is listed once.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .files import os_reason
from .formats import is_raw, photo_extensions

log = logging.getLogger(__name__)

#: memo's own pictures (``memo explain``'s overlays and heatmaps): never ranked by a scan.
MEMO_OUTPUT_SUFFIXES = (".memo.jpg", ".memo.png")

#: What the files a scan passes over are, by extension, for the summary's count.
NOT_PHOTO_KINDS = {
    "video": frozenset({".mov", ".mp4", ".m4v", ".avi", ".mkv", ".mts", ".m2ts", ".3gp",
                        ".wmv", ".webm", ".mpg", ".mpeg"}),
    "sidecar": frozenset({".xmp", ".aae", ".thm", ".pp3", ".dop"}),
}
_SYSTEM_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})

#: The running system's pseudo-filesystems (processes, kernel objects, devices): never
#: photos, never entered, whatever a link says.
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
#: ``passed_over`` kinds of what a scan does not enter: links to folders outside the folders
#: given, and :data:`SYSTEM_FOLDERS` (by a link, or met scanning ``/``).
LINK_OUT, SYSTEM_FOLDER = "link out of the folders", "system folder"
SPECIAL_FILE = "special file"  # a named pipe, socket or device under a photo's name


def in_system_folder(real: str) -> bool:
    """Whether the resolved path ``real`` is in one of :data:`SYSTEM_FOLDERS`."""
    return any(real == top or real.startswith(top + "/") for top in SYSTEM_FOLDERS)


def _inside(real: str, roots: Iterable[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep)
               for root in roots)


#: Why a file replaced between its hashing and its decoding gets no score in that run: what
#: was decoded may not be the content hashed (:meth:`FoundFile.changed`).
CHANGED = "changed while memo was reading it; not scored (run again to score it)"


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
        inode: its inode number (0: not known).
    """

    path: str
    abspath: str
    size: int
    mtime_ns: int
    relpath: str
    inode: int = 0

    def changed(self) -> bool:
        """Whether the file at :attr:`path` is no longer the one found: gone, or another
        size, modification time or inode (replaced, even by a rename over it)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return ((st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns)
                or bool(self.inode) and st.st_ino != self.inode)


@dataclass
class ScanResult:
    """What a scan found.

    Attributes:
        files: the photos to score, sorted by path.
        problems: ``(path, reason)`` for what could not be read.
        passed_over: files in the folders that are not photos to rank, counted by kind
            (:func:`not_photo_kind`), :data:`SPECIAL_FILE` for named pipes, sockets and
            devices, ``raw twin`` for RAW files ranked as their JPEG, and what was not
            entered (:data:`LINK_OUT`, :data:`SYSTEM_FOLDER`).
    """

    files: list[FoundFile] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    passed_over: Counter[str] = field(default_factory=Counter)


def not_photo_kind(name: str) -> str | None:
    """Why a scan passes over a file named ``name``: ``video``, ``sidecar``, ``system file``,
    ``memo output`` or ``other file``; None for a photo it ranks."""
    lower = name.lower()
    if lower in _SYSTEM_FILES or lower.startswith("._"):
        return "system file"
    if lower.endswith(MEMO_OUTPUT_SUFFIXES):
        return "memo output"
    extension = os.path.splitext(lower)[1]
    if extension in photo_extensions():
        return None
    for kind, extensions in NOT_PHOTO_KINDS.items():
        if extension in extensions:
            return kind
    return "other file"


def split_raw_twins(files: list[FoundFile]) -> tuple[list[FoundFile], list[FoundFile]]:
    """``(kept, twins)``: the RAW files among ``files`` that have a non-RAW twin (same
    folder, same name before the extension, any case, e.g. ``IMG_1.CR2`` and ``IMG_1.JPG``)
    go to ``twins``, so the shot is ranked once, as its JPEG (or HEIC)."""
    def shot(f: FoundFile) -> tuple[str, str]:
        folder, name = os.path.split(f.abspath)
        return folder, os.path.splitext(name)[0].lower()

    rendered = {shot(f) for f in files if not is_raw(f.path)}
    kept, twins = [], []
    for f in files:
        (twins if is_raw(f.path) and shot(f) in rendered else kept).append(f)
    return kept, twins


class _Walker:
    def __init__(self, include_hidden: bool, follow_links: bool):
        self.include_hidden = include_hidden
        self.follow_links = follow_links
        self.roots: list[str] = []  # the folders given, resolved
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
            FoundFile(path, os.path.abspath(path), st.st_size, st.st_mtime_ns, relpath,
                      st.st_ino))

    def refused_link(self, path: str, is_folder: bool) -> str | None:
        """Why the symbolic link at ``path`` is not followed (a ``passed_over`` kind), or
        None; the link is logged at ``-v``."""
        real = os.path.realpath(path)
        if in_system_folder(real):
            return self.pass_over(SYSTEM_FOLDER, f"{path} -> {real}")
        if is_folder and not self.follow_links and not _inside(real, self.roots):
            return self.pass_over(LINK_OUT, f"{path} -> {real}")
        return None

    def pass_over(self, kind: str, what: str) -> str:
        self.result.passed_over[kind] += 1
        log.info("not entered (%s): %s", kind, what)
        return kind

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
                hidden = entry.name.startswith(".") and not self.include_hidden
                if hidden and not_photo_kind(entry.name) == "system file":
                    self.result.passed_over["system file"] += 1
                if hidden:
                    continue
                path = entry.name if folder == os.curdir else os.path.join(folder, entry.name)
                rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
                try:
                    if entry.is_symlink() and self.refused_link(path, entry.is_dir()):
                        continue
                    if entry.is_dir():
                        if in_system_folder(os.path.realpath(path)):  # reached from /
                            self.pass_over(SYSTEM_FOLDER, path)
                        else:
                            subfolders.append((path, rel, entry.stat()))
                        continue
                    kind = not_photo_kind(entry.name)
                    if kind is not None:
                        self.result.passed_over[kind] += 1
                        log.debug("not a photo (%s): %s", kind, path)
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
                else:  # a named pipe, socket or device: reading it could block
                    self.result.passed_over[SPECIAL_FILE] += 1
                    log.debug("not a regular file: %s", path)
            stack.extend(reversed(subfolders))


def scan(inputs: Iterable[str | os.PathLike], include_hidden: bool = False,
         follow_links: bool = False) -> ScanResult:
    """Find the images under ``inputs`` (files and folders).

    Args:
        inputs: files (taken as they are, whatever their extension) and folders (searched
            recursively for :func:`~memocli.formats.photo_extensions`; memo's own outputs, videos, sidecars
            and other files are passed over and counted). A RAW file with a JPEG twin
            beside it is dropped, so the shot is ranked once.
        include_hidden: also enter hidden folders and take hidden files (names starting
            with a dot) found inside folders.
        follow_links: follow links to folders wherever they lead (never into
            :data:`SYSTEM_FOLDERS`); by default only those whose target lies inside one of
            the folders given.
    """
    walker = _Walker(include_hidden, follow_links)
    inputs = [os.path.normpath(os.fspath(raw)) for raw in inputs]
    walker.roots = [os.path.realpath(p) for p in inputs if os.path.isdir(p)]
    for path in inputs:
        try:
            st = os.stat(path)
        except OSError as e:
            walker.result.problems.append((path, os_reason(e)))
            continue
        if in_system_folder(os.path.realpath(path)):
            walker.result.problems.append(
                (path, f"in a system folder ({', '.join(SYSTEM_FOLDERS)}): never scanned"))
        elif stat_mod.S_ISDIR(st.st_mode):
            walker.walk(path, st)
        elif stat_mod.S_ISREG(st.st_mode):
            walker.add_file(path, st, os.path.basename(path))
        else:
            walker.result.problems.append((path, "not a regular file or folder"))
    walker.result.files, twins = split_raw_twins(walker.result.files)
    for twin in twins:
        walker.result.passed_over["raw twin"] += 1
        log.debug("RAW file ranked as its JPEG twin: %s", twin.path)
    walker.result.files.sort(key=lambda f: f.path)
    return walker.result
