"""``memo score``, ``memo export`` and ``memo cache``.

Click only: parse, call :mod:`memocli.score` / :mod:`memocli.cache`, print. Heavy modules
(torch) are imported by the library only when something needs the model.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from ..escape import dumps_json, for_terminal
from .options import (
    batch_options,
    burst_options,
    device_option,
    echo_err,
    precision_option,
    silent_option,
    WEIGHTS_HELP,
    WeightsType,
)
from .progress import progress_for_stderr


def _cache_options(f):
    f = click.option("--no-cache", is_flag=True,
                     help="Use no cache: score everything, store nothing.")(f)
    return click.option(
        "--cache", "cache_path", type=click.Path(dir_okay=False), metavar="PATH",
        help="Cache database [default: $MEMO_HOME/memo.db, else "
             "$XDG_CACHE_HOME/memo/memo.db, else ~/.cache/memo/memo.db].",
    )(f)


class ShardType(click.ParamType):
    """``I/N``: the I-th of N shards (1 <= I <= N), as a :class:`memocli.shard.Shard`."""

    name = "I/N"

    def convert(self, value, param, ctx):
        from ..shard import Shard

        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


def _scoring_options(f):
    """Options every command that scores shares: model, cache, scan, batching, device.

    The command receives them as keyword arguments to hand to :func:`_run_scoring` whole.
    """
    f = silent_option(f)
    f = click.option("--strict", is_flag=True,
                     help="Stop at the first file that cannot be scored (exit status 1); "
                          "by default such files are reported and skipped.")(f)
    f = precision_option()(f)
    f = device_option(f)
    f = batch_options(default=None)(f)
    f = click.option("--hidden", is_flag=True,
                     help="Also look inside hidden folders (names starting with '.').")(f)
    f = click.option("--shard", type=ShardType(), metavar="I/N",
                     help="Take only the I-th of N shards of the photos found, split by "
                          "their path inside PATH (one job of N; see docs/scaling.md).")(f)
    f = _cache_options(f)
    return click.option("-w", "--weights", type=WeightsType(), help=WEIGHTS_HELP)(f)


def _open_cache(cache_path: str | None, no_cache: bool):
    from ..cache import Cache, default_cache_path

    if cache_path and no_cache:
        raise click.UsageError("use --cache PATH or --no-cache, not both")
    return Cache(None if no_cache else (cache_path or default_cache_path()))


def _run_scoring(inputs, weights, cache_path, no_cache, hidden, shard, batch_size, workers,
                 device, precision, strict, silent, with_features=False):
    from ..score import score_paths

    with _open_cache(cache_path, no_cache) as cache:
        report = score_paths(inputs, cache, weights=weights, device=device,
                             batch_size=batch_size, workers=workers, include_hidden=hidden,
                             precision=precision, progress=progress_for_stderr(silent),
                             with_features=with_features, shard=shard, strict=strict)
    if not silent:
        echo_err(f"{len(report.files)} photo(s): {report.from_cache} from the cache, "
                 f"{report.scored_files} scored now (model {report.model_id})"
                 + _passed_over_text(report.passed_over))
    return report


def _passed_over_text(counts: dict[str, int]) -> str:
    """``'; 2 RAW files ranked as their JPEG; not photos: 1 video, 2 sidecars'``, or ''."""
    def plural(n: int, noun: str) -> str:
        return f"{n} {noun}" + "s" * (n != 1)

    text = ""
    twins = counts.get("raw twin", 0)
    if twins:
        text += f"; {plural(twins, 'RAW file')} ranked as {'their' if twins > 1 else 'its'} JPEG"
    others = [plural(n, kind) for kind, n in sorted(counts.items()) if kind != "raw twin"]
    if others:
        text += "; not photos: " + ", ".join(others)
    return text


def _one_per_burst_option(f):
    return click.option("--one-per-burst", is_flag=True,
                        help="Keep only the most memorable photo of each burst (photos "
                             "taken seconds apart that look alike; see docs/scoring.md).")(f)


def _finish(report, failed_heatmaps: int = 0) -> None:
    """Exit 1 (after the data is out) when any file had to be skipped."""
    messages = []
    if report.problems:
        messages.append(f"{len(report.problems)} file(s) skipped (reasons above); "
                        "the others were scored")
    if failed_heatmaps:
        messages.append(f"{failed_heatmaps} heatmap(s) failed")
    if messages:
        raise click.ClickException("; ".join(messages))


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
@_one_per_burst_option
@burst_options
@_scoring_options
def score(inputs, top, bottom, fmt, explain_dir, one_per_burst, burst_seconds,
          burst_similarity, **scoring):
    """Rank photos by predicted memorability.

    PATH... are image files and folders; folders are searched recursively for photos:
    jpg/jpeg/png/webp/tif/tiff/bmp/gif, HEIC/HEIF and camera RAW (dng/cr2/cr3/nef/arw/raf/
    orf/rw2; a RAW with a JPEG of the same name beside it is ranked once, as the JPEG).
    Videos, sidecars, system files and memo's own *.memo.jpg/png outputs are passed over
    and counted in the summary line. Scores are cached by file content
    and model, so a second run answers from the cache in seconds; only new or edited
    photos are scored. Score: the share of people expected to recognise the
    photo on a second viewing (0-1; natural scenes average about 0.60, other photos
    0.79). Pct: the
    share of the photos scanned that it beats. A file that cannot be read is reported
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
      memo score /archive --shard 3/16 --cache shard3.db
    """
    from ..bursts import rank_bursts
    from ..output import print_table, write_csv, write_json
    from ..score import rank, select

    bursts = one_per_burst or fmt != "table"  # JSON and CSV rows have a burst column
    report = _run_scoring(inputs, **scoring, with_features=bursts)
    ranked = (rank_bursts(report.files, burst_seconds, burst_similarity, one_per_burst)
              if bursts else rank(report.files))
    shown = select(ranked, top, bottom)
    out = sys.stdout
    if fmt == "json":
        write_json(shown, report.model_id, out)
    elif fmt == "csv":
        write_csv(shown, report.model_id, out)
    elif report.files:
        print_table(shown, report.model_id, len(report.files), out)
    failed_heatmaps = 0
    if explain_dir is not None and shown:
        from .explain_cmd import write_explanations

        # heatmap lines go to stderr: stdout stays the ranked data
        with contextlib.redirect_stdout(sys.stderr):
            failed_heatmaps = write_explanations(
                [r.item.path for r in shown], explain_dir, scoring["weights"],
                scoring["device"], batch_size=min(scoring["batch_size"] or 16, 16))
    _finish(report, failed_heatmaps)


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True), metavar="PATH...")
@click.argument("out", type=click.Path(allow_dash=True), metavar="OUT")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl"]), default=None,
              help="Output format [default: from OUT's extension, .csv, .json or .jsonl; "
                   "csv for '-'].")
@_one_per_burst_option
@burst_options
@_scoring_options
def export(inputs, out, fmt, one_per_burst, burst_seconds, burst_similarity, **scoring):
    """Write the ranks of every photo under PATH... to OUT (CSV, JSON or JSON Lines).

    Photos without a cached score for the model are scored first. One row per photo,
    best first, with columns rank, path, score, percentile, content_hash, width, height,
    date_taken, camera, model_id, raw_score, burst (the rank of the best frame of the
    photo's burst; see docs/scoring.md). OUT '-' is stdout. The format comes from OUT's
    extension (.csv, .json, .jsonl); another extension needs --format. OUT's folder must
    exist. The file is replaced atomically, never left half-written.

    \b
    Examples:
      memo export ~/Photos ranks.csv
      memo export ~/Photos ~/Trips ranks.json
      memo export ~/Photos - --format json | jq '.[0]'
      memo export ~/Photos ranks.jsonl --one-per-burst
    """
    from ..bursts import rank_bursts
    from ..files import os_reason
    from ..output import WRITERS, write_file

    fmt = _export_format(inputs, out, fmt)
    report = _run_scoring(inputs, **scoring, with_features=True)
    ranked = rank_bursts(report.files, burst_seconds, burst_similarity, one_per_burst)
    if out == "-":
        WRITERS[fmt](ranked, report.model_id, sys.stdout)
    else:
        try:
            write_file(ranked, report.model_id, out, fmt)
        except OSError as e:
            raise click.ClickException(f"{out}: cannot write: {os_reason(e)}") from None
        if not scoring["silent"]:
            echo_err(f"wrote {len(ranked)} row(s) to {out}")
    _finish(report)


def _export_format(inputs: tuple[str, ...], out: str, fmt: str | None) -> str:
    """The format to write OUT in, after checking what can be checked before scoring."""
    from ..output import FORMAT_OF_EXTENSION

    if not inputs:  # Click gave the only argument to OUT: it is OUT that is missing
        raise click.UsageError("Missing argument 'OUT': the file to write (.csv, .json or "
                               ".jsonl; '-' for stdout), after PATH...")
    if out == "-":
        return fmt or "csv"
    if Path(out).is_dir():
        raise click.ClickException(f"{for_terminal(out)}: Is a directory")
    if not Path(out).parent.is_dir():
        raise click.ClickException(f"{for_terminal(out)}: No such file or directory")
    extension = Path(out).suffix.lower()
    if fmt is None and extension not in FORMAT_OF_EXTENSION:
        raise click.UsageError(f"cannot tell the format from {for_terminal(out)}'s extension: "
                               "use .csv, .json or .jsonl, or pass --format")
    return fmt or FORMAT_OF_EXTENSION[extension]


@click.group()
def cache():
    """Inspect and tidy the score cache.

    \b
    Examples:
      memo cache info
      memo cache prune --dry-run
      memo cache prune --vacuum --cache demo-out/memo.db
      memo cache merge shard*.db --into archive.db
    """


def _existing_cache_path(cache_path: str | None) -> Path:
    from ..cache import default_cache_path

    return Path(cache_path) if cache_path else default_cache_path()


@cache.command()
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="Cache database [default: the user cache, see `memo score --help`].")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(cache_path, as_json):
    """Rows, models and size of the score cache.

    \b
    Examples:
      memo cache info
      memo cache info --cache demo-out/memo.db --json
    """
    from ..cache import Cache

    path = _existing_cache_path(cache_path)
    if not path.is_file():
        if as_json:
            click.echo(dumps_json({"path": str(path), "exists": False}))
        else:
            click.echo(f"cache: {for_terminal(path)} (not created yet)")
        return
    with Cache(path) as db:
        facts = db.info()
    if as_json:
        click.echo(dumps_json({**facts, "exists": True}, indent=2))
        return
    rows = facts["rows"]
    click.echo(f"cache:    {for_terminal(facts['path'])}")
    click.echo(f"size:     {_human_size(facts['size_bytes'])}")
    click.echo(f"files:    {rows['files']} path(s), {rows['images']} distinct content(s)")
    click.echo(f"scores:   {rows['scores']}")
    click.echo(f"models:   {len(facts['models'])}")
    for m in facts["models"]:
        where = f"  {', '.join(m['checkpoints'])}" if m["checkpoints"] else ""
        click.echo(for_terminal(f"  {m['model']}  {m['scores']} score(s), "
                                f"last {m['last_scored']}{where}"))


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@cache.command()
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="Cache database [default: the user cache, see `memo score --help`].")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--vacuum", is_flag=True, help="Then shrink the database file.")
def prune(cache_path, dry_run, vacuum):
    """Forget files that no longer exist, and scores no remaining file needs.

    Scores are kept while any cached path still has that content. Files on a disk that
    is not mounted look deleted: prune while your library is reachable.

    \b
    Examples:
      memo cache prune --dry-run
      memo cache prune --vacuum
    """
    from ..cache import Cache

    path = _existing_cache_path(cache_path)
    if not path.is_file():
        click.echo(f"cache: {for_terminal(path)} (not created yet); nothing to prune")
        return
    with Cache(path) as db:
        counts = db.prune(dry_run=dry_run)
        if vacuum and not dry_run:
            db.vacuum()
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb}: {counts['files']} missing file(s), {counts['scores']} score(s), "
               f"{counts['images']} image record(s), {counts['checkpoints']} checkpoint "
               "record(s)")


@cache.command()
@click.argument("sources", nargs=-1, required=True, metavar="SRC.db...",
                type=click.Path(exists=True, dir_okay=False))
@click.option("--into", "dest", required=True, metavar="DST.db",
              type=click.Path(dir_okay=False), help="The cache to merge into (created if missing).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=None, metavar="X",
              help="Largest difference between two scores of one photo and model that is "
                   "not reported as a conflict [default: 0.01].")
def merge(sources, dest, tolerance):
    """Combine caches, e.g. those of `memo score --shard` jobs, into DST.db.

    Copies scores, files, image facts, checkpoints and any other rows DST.db does not
    have yet; rows it has are kept, so merging twice changes nothing. A score that
    differs from DST.db's for the same photo and model is reported (DST.db's is kept,
    exit status 1). Each SRC goes in as one transaction.

    \b
    Examples:
      memo cache merge shard*.db --into archive.db
      memo cache merge laptop.db --into ~/.cache/memo/memo.db
    """
    from ..merge import DEFAULT_TOLERANCE, merge_caches

    reports = merge_caches(sources, dest, DEFAULT_TOLERANCE if tolerance is None else tolerance)
    conflicts = 0
    for r in reports:
        added = ", ".join(f"{n} {table}" for table, n in r.added.items())
        click.echo(for_terminal(f"{r.source}: added {added}"))
        for c in r.examples:
            key = ", ".join(f"{k}={v}" for k, v in c.key.items())
            echo_err(f"conflict in {c.table} ({key}): kept {c.column} {c.kept:.6f}, "
                     f"{r.source} has {c.other:.6f}")
        if r.conflicts > len(r.examples):
            echo_err(f"... and {r.conflicts - len(r.examples)} more conflict(s) in {r.source}")
        conflicts += r.conflicts
    if conflicts:
        raise click.ClickException(f"{conflicts} conflicting value(s); {dest}'s were kept")


COMMANDS = [score, export, cache]
