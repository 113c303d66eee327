"""Progress and diagnostics on stderr: tqdm bars on a terminal; in a log (stderr not a
terminal), a plain line now and then instead of ``\\r`` frames."""

from __future__ import annotations

import sys
import time

import click

from ..escape import terminal_message

#: Seconds between two progress lines in a log.
LOG_EVERY = 30.0


def echo_err(message: str) -> None:
    """Diagnostics go to stderr so stdout stays data (terminal-safe: control characters
    of file names in ``message`` are escaped)."""
    click.echo(terminal_message(message), err=True)


class LogLines:
    """A stand-in for a tqdm bar off a terminal: ``scoring: 120/2000 files`` at most every
    :data:`LOG_EVERY` seconds, and a last line at the end when it printed any before (a
    quick stage prints nothing)."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0
        self.printed = False
        self._last = time.monotonic()

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc) -> None:
        if self.printed and self.done:
            self._print()

    def update(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self._last >= LOG_EVERY:
            self._print()

    def _print(self) -> None:
        echo_err(f"{self.desc}: {self.done}/{self.total} {self.unit}s")
        self.printed, self._last = True, time.monotonic()


def progress_for_stderr(silent: bool):
    """A :class:`memocli.reporting.Progress` for stderr: no bars when ``silent``, tqdm bars on a
    terminal, :class:`LogLines` otherwise; problem lines always."""
    from ..reporting import Progress

    if silent:
        return Progress(bar=None, echo=echo_err)
    if not sys.stderr.isatty():
        return Progress(bar=LogLines, echo=echo_err)
    from tqdm import tqdm

    class Bar(tqdm):
        """A bar that wipes its line when it closes. tqdm's own close skips that for a bar
        younger than its ``delay``, yet ``tqdm.write`` (a skipped file's line) draws every
        bar at once: a 'scoring: 0%' was left before the summary line."""

        def close(self) -> None:
            if not self.disable:
                self.clear()
            super().close()

    def bar(total: int, desc: str, unit: str):
        return Bar(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                   dynamic_ncols=True, delay=1.0, smoothing=0.1)

    return Progress(bar=bar, echo=lambda message: tqdm.write(terminal_message(message),
                                                             file=sys.stderr))
