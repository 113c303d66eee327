"""Root ``memo`` group: version, help, and turning library errors into one-line messages."""

from __future__ import annotations

import logging
import signal
import sys
from contextlib import contextmanager

import click

from .. import __version__, photo_warnings
from ..errors import MemoError
from ..escape import terminal_message


class MemoGroup(click.Group):
    """A group that reports :class:`MemoError` as ``Error: ...`` (exit 1), not a traceback.

    Every error message is made terminal-safe (:func:`memocli.escape.terminal_message`):
    a file name in it cannot move the cursor or change colours.
    """

    def invoke(self, ctx: click.Context):
        stopped_by = [signal.SIGINT]
        try:
            with _sigterm_as_interrupt(stopped_by):
                return super().invoke(ctx)
        except MemoError as e:
            raise click.ClickException(terminal_message(str(e))) from None
        except click.ClickException as e:
            e.message = terminal_message(e.message)
            raise
        except KeyboardInterrupt as e:  # an Interrupted says what was saved
            click.echo(f"\n{str(e) or 'interrupted'}", err=True)
            sys.exit(128 + stopped_by[0])


@contextmanager
def _sigterm_as_interrupt(stopped_by: list[int]):
    """SIGTERM (``kill``, ``timeout``, ``docker stop``) stops a command as Ctrl-C does:
    what is done is saved and said; ``stopped_by`` gets the signal for the exit status
    (128 + 15). Only in the main thread, where Python runs signal handlers."""
    def stop(signum, frame):
        stopped_by[0] = signum
        if hasattr(signal, "SIGCHLD"):  # the signal also ended the group's decode workers:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # torch's handler would say so
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.group(cls=MemoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="memo")
@click.option("-v", "--verbose", is_flag=True,
              help="Log what memo does to stderr: device, precision, batch size, cache, "
                   "model, files passed over as not photos.")
def cli(verbose: bool) -> None:
    """memo: rank photos by how memorable they are predicted to be.

    \b
    Examples:
      memo score ~/Photos --top 50
      memo train lamem/ --fold 1 --epochs 10 --out runs/f1
      memo evaluate lamem/ --split test_1 --weights runs/f1/best.pt
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # -v is about memo's own facts (device, precision, cache, model, files passed over),
    # not the libraries' internals (PIL alone logs dozens of TIFF-tag lines per photo).
    logging.getLogger("memocli").setLevel(logging.DEBUG if verbose else logging.WARNING)
    photo_warnings.install()


def _register() -> None:
    from . import (
        agreement_cmd,
        batch_cmd,
        cache_cmds,
        explain_cmd,
        fit_cmds,
        models_cmd,
        report_cmd,
        score_cmds,
        train_cmds,
        watch_cmd,
        xmp_cmd,
    )

    for module in (train_cmds, fit_cmds, score_cmds, cache_cmds, explain_cmd, report_cmd,
                   models_cmd, xmp_cmd, agreement_cmd, watch_cmd, batch_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()
