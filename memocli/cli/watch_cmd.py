"""``memo watch``: score photos as they arrive, and with ``--xmp`` write their sidecars.

Click only: parse, call :mod:`memocli.watch` with a batch handler built from
:func:`~memocli.cli.options.run_scoring` and :func:`memocli.xmp_write.write_xmp`, print.
"""

from __future__ import annotations

import click

from ..errors import MemoError
from ..escape import for_terminal
from .options import echo_err, run_scoring, scoring_options
from .xmp_cmd import make_plan, sidecar_option, xmp_field_options


class BatchScorer:
    """Scores each batch of arrived photos, prints them, and writes their sidecars."""

    def __init__(self, scoring: dict, plan):
        self.scoring = scoring
        self.plan = plan  # None: no sidecars
        self.known = {}  # abspath -> ScoredFile: the ranking the percentiles come from
        self.source = None  # the model, loaded by the first batch that needs it
        self.scored = 0
        self.failed = 0

    def __call__(self, batch: list[str]) -> None:
        from ..ranking import rank
        from ..xmp_write import write_xmp
        from .progress import progress_for_stderr

        try:
            report = run_scoring(batch, **self.scoring, source=self.source)
        except MemoError as e:  # every file of the batch vanished or is unreadable
            echo_err(str(e))
            self.failed += len(batch)
            return
        self.failed += len(report.problems)
        self.source = report.source
        for f in report.files:
            self.known[f.abspath] = f
            click.echo(f"{for_terminal(f.path)}\t{f.score:.4f}")
        self.scored += len(report.files)
        if self.plan is not None and report.files:
            fresh = {f.abspath for f in report.files}
            ranked = [r for r in rank(list(self.known.values())) if r.item.abspath in fresh]
            summary = write_xmp(ranked, report.model_id, self.plan,
                                progress_for_stderr(self.scoring["silent"]), echo_err)
            self.failed += len(summary.failed)
            # percentiles among every photo scored since the watch began
            ranked_all = len(self.known)
            if not self.scoring["silent"]:
                echo_err(f"sidecars: {summary.changed} written (ranked among {ranked_all})")


@click.command()
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False), metavar="FOLDER...")
@click.option("--settle", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              metavar="SECONDS",
              help="Score a file once its size and time have not changed for this long.")
@click.option("--xmp", "with_xmp", is_flag=True,
              help="Also write each scored photo's XMP sidecar, as memo xmp does (with "
                   "--stars, --label, --keywords, --sidecar).")
@xmp_field_options
@sidecar_option
@scoring_options
def watch(inputs, settle, with_xmp, stars, star_map, label_top, label_colour, keywords,
          overwrite, sidecar, **scoring):
    """Score photos as they arrive in FOLDER... (card imports, phone sync) until Ctrl-C.

    Photos already there are scored first (those in the cache cost nothing). A new or
    changed photo is scored once it has stopped growing (--settle), in batches, and
    stored in the cache; each prints as 'path<TAB>score'. Folders created, renamed or
    deleted while it runs are followed; a file that never finishes copying holds up no
    other. With --xmp each scored photo's sidecar gets memo's namespace and the fields
    asked for, like memo xmp (percentiles among the photos scored since the watch
    began; no --embed: rewriting photos that are being watched would score them again).
    Ctrl-C loses nothing: every finished batch is in the cache, and photos still on
    their way are scored by the next run.

    \b
    Examples:
      memo watch ~/Pictures/Import
      memo watch ~/Pictures/Import --xmp --stars --keywords
      memo watch /media/phone-sync --settle 5 --weights r152
    """
    from ..watch import ArrivalQueue, watch_folders

    plan = (make_plan(sidecar, False, stars, star_map, label_top, label_colour, keywords,
                      overwrite) if with_xmp else None)
    scorer = BatchScorer(scoring, plan)
    queue = ArrivalQueue(settle, include_hidden=scoring["hidden"])
    where = ", ".join(for_terminal(p) for p in inputs)
    try:
        watch_folders(list(inputs), scorer, queue, on_ready=lambda: echo_err(
            f"watching {where} (Ctrl-C to stop)"))
    except KeyboardInterrupt:
        left = queue.waiting()
        echo_err(f"stopped: {scorer.scored} photo(s) scored and saved"
                 + (f"; {left} still arriving, scored by the next run" if left else ""))
        if scorer.failed:
            raise SystemExit(1) from None
        raise SystemExit(130) from None


COMMANDS = [watch]
