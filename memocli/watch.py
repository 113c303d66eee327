"""``memo watch``: photos scored as they arrive (card imports, phone sync).

watchdog (inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows) says
which files are created, changed or moved in; a folder created or moved in is walked, as
its files may land before its own watch does. A file is ready once its size and
modification time have stayed the same for ``settle`` seconds, each file on its own clock,
so a copy that never finishes holds up nothing else; a file that vanishes is forgotten,
and one whose size and time are those it was handed over with (opened, touched) is not
handed over again.
Ready files are handed over in batches: when nothing else is on its way, when a batch is
full, or when the oldest has waited ``settle`` more seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .scan import not_photo_kind

BATCH_MAX = 64


@dataclass
class _Pending:
    key: tuple[int, int]  # (size, mtime_ns) when last seen
    since: float  # monotonic time it was first seen with that key


class ArrivalQueue:
    """Photos on their way: each ready once it has stopped changing (thread-safe)."""

    def __init__(self, settle: float, include_hidden: bool = False):
        self.settle = settle
        self.include_hidden = include_hidden
        self._pending: dict[str, _Pending] = {}
        self._ready: list[tuple[str, float]] = []
        self._handed: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) handed over
        self._lock = threading.Lock()

    def wants(self, path: str) -> bool:
        """A photo by its name (memo's and other programs' temporary files are hidden)."""
        name = os.path.basename(path)
        return (self.include_hidden or not name.startswith(".")) and not_photo_kind(name) is None

    def add(self, path: str) -> None:
        """``path`` was created or changed: (re)start its clock."""
        if self.wants(path):
            with self._lock:
                self._pending.pop(path, None)
                self._pending[path] = _Pending((-1, -1), time.monotonic())

    def add_tree(self, folder: str) -> None:
        """Every photo under ``folder`` (a folder created or moved in)."""
        for top, dirs, files in os.walk(folder):
            if not self.include_hidden:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                self.add(os.path.join(top, name))

    def waiting(self) -> int:
        """Photos seen but not ready yet."""
        with self._lock:
            return len(self._pending) + len(self._ready)

    def take(self, now: float | None = None) -> list[str]:
        """The photos to score now (see the module's docstring), or []."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for path, entry in list(self._pending.items()):
                try:
                    st = os.stat(path)
                except OSError:
                    del self._pending[path]  # deleted, or its folder moved away
                    continue
                key = (st.st_size, st.st_mtime_ns)
                if key != entry.key:
                    self._pending[path] = _Pending(key, now)
                elif st.st_size and now - entry.since >= self.settle:
                    del self._pending[path]
                    if self._handed.get(path) != key:  # not just touched since handed over
                        self._handed[path] = key
                        self._ready.append((path, now))
            if not self._ready:
                return []
            oldest = self._ready[0][1]
            if (self._pending and len(self._ready) < BATCH_MAX
                    and now - oldest < self.settle):
                return []
            batch = [p for p, _ in self._ready[:BATCH_MAX]]
            del self._ready[:BATCH_MAX]
            return batch


def watch_folders(roots: list[str], on_batch: Callable[[list[str]], None],
                  queue: ArrivalQueue, stop: threading.Event | None = None,
                  poll: float = 0.5, on_ready: Callable[[], None] | None = None) -> None:
    """Hand the photos arriving under ``roots`` (and those already there) to ``on_batch``
    until ``stop`` is set or Ctrl-C."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            if event.event_type in ("deleted", "opened", "closed_no_write"):
                return
            path = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
            if event.is_directory:
                if event.event_type in ("created", "moved"):
                    queue.add_tree(path)
            else:
                queue.add(path)

    stop = stop or threading.Event()
    observer = Observer()
    for root in roots:
        observer.schedule(Handler(), root, recursive=True)
    observer.start()
    try:
        for root in roots:
            queue.add_tree(root)
        if on_ready:
            on_ready()
        while not stop.is_set():
            batch = queue.take()
            if batch:
                on_batch(batch)
            else:
                stop.wait(poll)
    finally:
        observer.stop()
        observer.join(timeout=5)
