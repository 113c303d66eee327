"""``memo score`` and ``memo export``.

Click only: parse, call :mod:`memocli.score`, print. Heavy modules
(torch) are imported by the library only when something needs the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..escape import for_terminal
from .options import (
    burst_options,
    diverse_options,
    echo_err,
    finish,
    one_per_burst_option,
    run_scoring,
    scoring_options,
)


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True),
                metavar="PATH...")
@click.option("--top", type=click.IntRange(min=1), metavar="N",
              help="Show the N most memorable photos.")
@click.option("--bottom", type=click.IntRange(min=1), metavar="N",
              help="Show the N least memorable photos.")
@click.option("--table", "fmt", flag_value="table", default=True,
              help="Print a table (the default).")
@click.option("--json", "fmt", flag_value="json", help="Print JSON rows instead.")
@click.option("--csv", "fmt", flag_value="csv", help="Print CSV rows instead.")
@click.option("--explain", "explain_dir", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Also write Grad-CAM heatmaps of the listed photos into DIR "
                                  "(see memo explain).")
@diverse_options()
@one_per_burst_option
@burst_options
@scoring_options
def score(inputs, top, bottom, fmt, explain_dir, diverse, trade_off, group_by, one_per_burst,
          burst_seconds, burst_similarity, **scoring):
    """Rank photos by predicted memorability.

    PATH... are image files and folders; folders are searched recursively for photos:
    jpg/jpeg/png/webp/tif/tiff/bmp/gif, HEIC/HEIF and camera RAW (dng/cr2/cr3/nef/arw/raf/
    orf/rw2; a RAW with a JPEG of the same name beside it is ranked once, as the JPEG).
    Videos, sidecars, system files and memo's own *.memo.jpg/png outputs are passed over
    and counted in the summary line; so are pictures that are not photos (icons, blank
    images, screenshots, drawings, documents; --include-all ranks them). --diverse picks a
    varied top N; --group-by shows the top of each folder, day or kind. Scores are cached
    by file content
    and model, so a second run answers from the cache in seconds; only new or edited
    photos are scored. Score: the share of people expected to recognise the
    photo on a second viewing (0-1); outdoor scenes are on LNSIM's scale (average about
    0.60), other photos on LaMem's (about 0.79), so compare scenes with scenes. Pct: the
    share of the other photos ranked that score lower. A file that cannot be read is reported
    on stderr and skipped (exit status 1 at the end). --one-per-burst lists only the best
    frame of each burst (photos taken seconds apart that look alike); JSON and CSV rows
    say which burst each photo is in.

    \b
    Examples:
      memo score ~/Photos --top 50
      memo score a.jpg b.png dir/ --bottom 20 --json
      memo score ~/Photos --csv --no-cache > ranks.csv
      memo score ~/Photos --weights runs/f1/best.pt --device cuda
      memo score ~/Photos --top 20 --explain heatmaps/
      memo score ~/Photos --top 50 --one-per-burst
      memo score ~/Photos --top 20 --diverse
      memo score ~/Photos --top 3 --group-by folder
      memo score /archive --shard 3/16 --cache shard3.db
    """
    from ..bursts import rank_bursts
    from ..files import check_output_folder
    from ..output import print_table, write_csv, write_json
    from ..ranking import rank
    from ..selection import arrange

    if bottom and (diverse or group_by):
        raise click.UsageError("--bottom cannot be combined with --diverse or --group-by")
    if explain_dir is not None:
        check_output_folder(explain_dir)  # said now, not after scoring
    bursts = one_per_burst or fmt != "table"  # JSON and CSV rows have a burst column
    report = run_scoring(inputs, **scoring, with_features=bursts or diverse)
    ranked = (rank_bursts(report.files, burst_seconds, burst_similarity, one_per_burst)
              if bursts else rank(report.files))
    shown = arrange(ranked, top, bottom, diverse, trade_off, group_by)
    out = sys.stdout
    if fmt == "json":
        write_json(shown, report.model_id, out)
    elif fmt == "csv":
        write_csv(shown, report.model_id, out)
    elif report.files:
        print_table(shown, report.model_id, len(report.files), out)
    failed_heatmaps = 0
    if explain_dir is not None and shown:
        from ..explain import explain_files
        from .explain_cmd import print_explanations

        _, failed_heatmaps = print_explanations(  # to stderr: stdout stays the ranked data
            explain_files([r.item.path for r in shown], explain_dir, report.source.load,
                          batch_size=min(scoring["batch_size"] or 16, 16)), echo=echo_err)
    finish(report, failed_heatmaps)


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True), metavar="PATH...")
@click.argument("out", type=click.Path(allow_dash=True), metavar="OUT")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl"]), default=None,
              help="Output format [default: from OUT's extension, .csv, .json or .jsonl; "
                   "csv for '-', a device or a FIFO].")
@diverse_options()
@one_per_burst_option
@burst_options
@scoring_options
def export(inputs, out, fmt, diverse, trade_off, group_by, one_per_burst, burst_seconds,
           burst_similarity, **scoring):
    """Write the ranks of every photo under PATH... to OUT (CSV, JSON or JSON Lines).

    Photos without a cached score for the model are scored first. One row per photo,
    best first, with columns rank, path, score, percentile, content_hash, width, height,
    date_taken, camera, model_id, raw_score, burst (the rank of the best frame of the
    photo's burst), kind (photo, or with --include-all icon, blank, screenshot, drawing),
    group (with --group-by). OUT '-' is stdout. The format comes from OUT's
    extension (.csv, .json, .jsonl); another extension needs --format. Missing folders
    are created. The file is replaced atomically, never left half-written; a symlink is
    written through to its target.

    \b
    Examples:
      memo export ~/Photos ranks.csv
      memo export ~/Photos ~/Trips ranks.json
      memo export ~/Photos - --format json | jq '.[0]'
      memo export ~/Photos ranks.jsonl --one-per-burst
      memo export ~/Photos ranks.csv --group-by day
    """
    from ..bursts import rank_bursts
    from ..files import os_reason
    from ..output import WRITERS, write_file
    from ..selection import arrange

    fmt = _export_format(inputs, out, fmt)
    report = run_scoring(inputs, **scoring, with_features=True)
    ranked = arrange(rank_bursts(report.files, burst_seconds, burst_similarity, one_per_burst),
                     None, None, diverse, trade_off, group_by)
    if out == "-":
        WRITERS[fmt](ranked, report.model_id, sys.stdout)
    else:
        try:
            write_file(ranked, report.model_id, out, fmt)
        except OSError as e:
            raise click.ClickException(f"{out}: cannot write: {os_reason(e)}") from None
        if not scoring["silent"]:
            echo_err(f"wrote {len(ranked)} row(s) to {out}")
    finish(report)


def _export_format(inputs: tuple[str, ...], out: str, fmt: str | None) -> str:
    """The format to write OUT in, after checking what can be checked before scoring."""
    from ..files import check_output_file, not_a_file
    from ..output import FORMAT_OF_EXTENSION

    if not inputs:  # Click gave the only argument to OUT: it is OUT that is missing
        raise click.UsageError("Missing argument 'OUT': the file to write (.csv, .json or "
                               ".jsonl; '-' for stdout), after PATH...")
    if out == "-":
        return fmt or "csv"
    check_output_file(out)
    extension = Path(out).suffix.lower()
    if fmt is None and not_a_file(out) not in (None, "missing"):  # /dev/stdout, a FIFO
        return FORMAT_OF_EXTENSION.get(extension, "csv")
    if fmt is None and extension not in FORMAT_OF_EXTENSION:
        raise click.UsageError(f"cannot tell the format from {for_terminal(out)}'s extension: "
                               "use .csv, .json or .jsonl, or pass --format")
    return fmt or FORMAT_OF_EXTENSION[extension]


COMMANDS = [score, export]
