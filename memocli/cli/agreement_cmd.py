"""``memo agreement``: the user's own stars as a yardstick for memo's ranking.

Click only: parse, call :mod:`memocli.user_ratings` and :mod:`memocli.agreement`, print.
"""

from __future__ import annotations

import json
import sys

import click

from .options import echo_err, finish, run_scoring, scoring_options


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True),
                metavar="PATH...")
@click.option("--top", "top_k", type=click.IntRange(min=1), metavar="K",
              help="Count the user's 4-5 star photos among memo's top K of each folder "
                   "[default: as many as there are such photos].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@scoring_options
def agreement(inputs, top_k, as_json, **scoring):
    """How memo's ranking agrees with your own star ratings, per folder and overall.

    Photos without a cached score are scored first (the options of memo score).
    Ratings and rejects come from XMP sidecars (IMG_1.JPG.xmp, IMG_1.CR2.xmp and
    Lightroom's IMG_1.xmp) and from the XMP inside the photos (read with exiftool when
    it is installed); the ratings memo xmp --stars wrote are not yours and are left out.
    Reports Spearman's rho between your stars and memo's score, memo's median
    percentile for each star level and for rejects, and how many of your 4-5 star
    photos are in memo's top K (with what chance alone would give).

    \b
    Examples:
      memo agreement ~/Photos
      memo agreement ~/Photos/2025 --top 20
      memo agreement ~/Photos --json | jq '.[-1].spearman'
    """
    from ..agreement import by_folder, describe
    from ..ranking import rank
    from ..user_ratings import read_user_ratings

    report = run_scoring(inputs, **scoring)
    ranked = rank(report.files)
    ratings = read_user_ratings([r.item.path for r in ranked], echo_err)
    if not ratings.embedded_read and not scoring["silent"]:
        echo_err("note: ratings inside the photos were not read (exiftool is not "
                 "installed); sidecars only")
    if ratings.memo_written and not scoring["silent"]:
        echo_err(f"{ratings.memo_written} rating(s) written by memo xmp left out")
    groups = by_folder(ranked, ratings.stars, top_k)
    if as_json:
        json.dump([g.to_json() for g in groups], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if not ratings.stars:
            echo_err("no ratings of yours found in the sidecars or photos")
        for g in groups:
            for line in describe(g):
                click.echo(line)
    finish(report)
    if ratings.problems:
        raise click.ClickException(f"{len(ratings.problems)} sidecar(s) could not be read "
                                   "(reasons above)")


COMMANDS = [agreement]
