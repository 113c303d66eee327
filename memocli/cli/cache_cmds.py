"""``memo cache``: inspect, tidy and merge the score cache."""

from __future__ import annotations

from pathlib import Path

import click

from ..escape import dumps_json, for_terminal
from .options import echo_err


@click.group()
def cache():
    """Inspect and tidy the score cache.

    \b
    Examples:
      memo cache info
      memo cache path
      memo cache clear --yes
      memo cache prune --dry-run
      memo cache prune --vacuum --cache demo-out/memo.db
      memo cache merge shard*.db --into archive.db
    """


def _existing_cache_path(cache_path: str | None) -> Path:
    """The cache a command is about: ``--cache PATH``, which must exist (a typo is an error,
    not an empty cache), else the default one (which may not be created yet)."""
    from ..folders import default_cache_path

    if not cache_path:
        return default_cache_path()
    if not Path(cache_path).is_file():
        raise click.BadParameter(f"{for_terminal(cache_path)}: no such cache file",
                                 param_hint="--cache")
    return Path(cache_path)


def _cache_option(f):
    return click.option(
        "--cache", "cache_path", type=click.Path(dir_okay=False), metavar="PATH",
        help="Cache database [default: the user cache, see `memo score --help`].")(f)


@cache.command("path")
def cache_path_cmd():
    """Print where the score cache is (memo score creates it there).

    $MEMO_HOME/memo.db, else memo.db in your user cache folder: on Linux
    $XDG_CACHE_HOME/memo, else ~/.cache/memo; on macOS ~/Library/Caches/memo; on Windows
    %LOCALAPPDATA%\\memo\\Cache. A cache an earlier memo made in ~/.cache/memo stays in use.

    \b
    Examples:
      memo cache path
      du -h "$(memo cache path)"
    """
    from ..folders import default_cache_path

    click.echo(for_terminal(default_cache_path()))


@cache.command()
@_cache_option
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
def clear(cache_path, yes):
    """Delete the score cache: every cached score (the photos are not touched).

    Asks first, unless --yes. The next memo score scores every photo again.

    \b
    Examples:
      memo cache clear
      memo cache clear --cache demo-out/memo.db --yes
    """
    path = _existing_cache_path(cache_path)
    if not path.is_file():
        click.echo(f"cache: {for_terminal(path)} (not created yet); nothing to clear")
        return
    if not yes:
        click.confirm(f"Delete the score cache {for_terminal(path)} "
                      f"({_human_size(path.stat().st_size)})?", abort=True, err=True)
    for suffix in ("", "-wal", "-shm"):  # SQLite's write-ahead log goes with it
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    click.echo(f"deleted {for_terminal(path)}")


@cache.command()
@_cache_option
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(cache_path, as_json):
    """Rows, models and size of the score cache.

    \b
    Examples:
      memo cache info
      memo cache info --cache demo-out/memo.db --json
    """
    from ..cache import Cache
    from ..engines import converted_networks

    path = _existing_cache_path(cache_path)
    if not path.is_file():
        if as_json:
            click.echo(dumps_json({"path": str(path), "exists": False}))
        else:
            click.echo(f"cache: {for_terminal(path)} (not created yet)")
        return
    with Cache(path) as db:
        facts = db.info()
    engines = converted_networks()
    if as_json:
        click.echo(dumps_json({**facts, "exists": True, "engines": engines}, indent=2))
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
    if engines["networks"]:
        click.echo(for_terminal(f"engines:  {engines['path']}  {engines['networks']} converted "
                                f"network(s), {_human_size(engines['size_bytes'])} (OpenVINO; "
                                "one unused for 90 days goes when another is converted)"))


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@cache.command()
@_cache_option
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--unreachable", is_flag=True,
              help="Also forget paths in folders that do not exist here (other machines' "
                   "paths from `memo cache merge`, a disk not mounted) and the scores only "
                   "they use.")
@click.option("--vacuum", is_flag=True, help="Then shrink the database file.")
def prune(cache_path, dry_run, unreachable, vacuum):
    """Forget files that no longer exist, and scores no remaining file needs.

    A file is forgotten when its folder is here and it is not. Scores are kept while any
    cached path still has that content. Paths whose folder does not exist here (merged
    from other machines, or on a disk not mounted) are kept with their scores, and
    counted, unless --unreachable.

    \b
    Examples:
      memo cache prune --dry-run
      memo cache prune --vacuum
      memo cache prune --unreachable --dry-run
    """
    from ..cache import Cache

    path = _existing_cache_path(cache_path)
    if not path.is_file():
        click.echo(f"cache: {for_terminal(path)} (not created yet); nothing to prune")
        return
    with Cache(path) as db:
        counts = db.prune(dry_run=dry_run, unreachable=unreachable)
        if vacuum and not dry_run:
            db.vacuum()
    verb = "would remove" if dry_run else "removed"
    forgotten = (f", {counts['unreachable']} file(s) in folders not here" * unreachable)
    click.echo(f"{verb}: {counts['files']} missing file(s){forgotten}, {counts['scores']} "
               f"score(s), {counts['images']} image record(s), {counts['checkpoints']} "
               "checkpoint record(s)")
    if counts["unreachable"] and not unreachable:
        click.echo(f"kept: {counts['unreachable']} file(s) in folders not here (other "
                   "machines' paths from `memo cache merge`, or a disk not mounted) and "
                   f"{counts['kept_scores']} score(s) only they use; --unreachable "
                   "forgets them too")


@cache.command()
@click.argument("sources", nargs=-1, required=True, metavar="SRC.db...",
                type=click.Path(exists=True))
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
    exit status 1). Each SRC goes in as one transaction. A SRC may also be the Parquet
    output of `memo batch` (its DEST folder): its scores, keyed by content, then serve
    `memo export`, `memo report` and bursts.

    \b
    Examples:
      memo cache merge shard*.db --into archive.db
      memo cache merge laptop.db --into "$(memo cache path)"
    """
    from ..merge import DEFAULT_TOLERANCE, merge_caches

    reports = merge_caches(sources, dest, DEFAULT_TOLERANCE if tolerance is None else tolerance)
    conflicts = refused = 0
    for r in reports:
        added = ", ".join(f"{n} {table}" for table, n in r.added.items())
        click.echo(for_terminal(f"{r.source}: added {added}"))
        if r.refused:
            echo_err(f"{r.source}: refused " + ", ".join(
                f"{n} {table} row(s)" for table, n in r.refused.items())
                + " (a value of the wrong type, or not a finite number"
                + ", or a feature vector of another length than its model's"
                * ("features" in r.refused) + ")")
            refused += sum(r.refused.values())
        for c in r.examples:
            key = ", ".join(f"{k}={v}" for k, v in c.key.items())
            echo_err(f"conflict in {c.table} ({key}): kept {c.column} {c.kept:.6f}, "
                     f"{r.source} has {c.other:.6f}")
        if r.conflicts > len(r.examples):
            echo_err(f"... and {r.conflicts - len(r.examples)} more conflict(s) in {r.source}")
        conflicts += r.conflicts
    problems = [f"{conflicts} conflicting value(s); {dest}'s were kept"] * bool(conflicts)
    problems += [f"{refused} row(s) refused"] * bool(refused)
    if problems:
        raise click.ClickException("; ".join(problems))


COMMANDS = [cache]
