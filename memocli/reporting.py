"""How the scoring pipeline reports: progress stages, and the files it could not score
(each said as it is found, or, for those that failed in an earlier run, all in one line).

Torch-free, like the cached path of :mod:`memocli.score`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import MemoError
from .files import printable

Echo = Callable[[str], None]


@dataclass
class Progress:
    """How the pipeline reports: a bar factory and a line printer (both to stderr)."""

    bar: Callable[..., Any] | None = None  # bar(total=, desc=, unit=) -> context manager
    echo: Echo = field(default=lambda message: None)

    @contextmanager
    def stage(self, total: int, desc: str) -> Iterator[Callable[[int], None]]:
        if self.bar is None or total == 0:
            yield lambda n: None
            return
        with self.bar(total=total, desc=desc, unit="file") as bar:
            yield bar.update


@dataclass
class Skips:
    """Files that cannot be scored: each reported as it is found; ``strict`` stops at the first."""

    progress: Progress
    strict: bool = False
    items: list[tuple[str, str]] = field(default_factory=list)
    known: list[tuple[str, str]] = field(default_factory=list)  # failed in an earlier run

    def add(self, path: str, reason: str) -> None:
        """Record ``path`` as skipped for ``reason`` (or, when strict, stop the run)."""
        if self.strict:
            raise MemoError(f"{printable(path)}: {reason} (stopped: --strict)")
        self.items.append((path, reason))
        self.progress.echo(f"skipped {printable(path)}: {reason}")

    def add_known(self, path: str, reason: str) -> None:
        """Record ``path`` as one that could not be read in an earlier run (said once for
        all of them by :meth:`say_known`)."""
        if self.strict:
            raise MemoError(f"{printable(path)}: {reason} (in an earlier run; stopped: "
                            "--strict; --retry-failed tries again)")
        self.known.append((path, reason))

    def say_known(self, shown: int = 3) -> None:
        """One line for the files that could not be read in an earlier run."""
        if not self.known:
            return
        n = len(self.known)
        names = [f"{printable(p)} ({reason})" for p, reason in self.known[:shown]]
        if n > shown:
            names.append(f"and {n - shown} more")
        self.progress.echo(f"{n} file{'s' * (n != 1)} could not be read earlier: "
                           f"{', '.join(names)}; --retry-failed tries again")
