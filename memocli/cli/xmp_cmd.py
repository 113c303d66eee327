"""``memo xmp``: memo's ranking into the XMP sidecars (and files) catalogues read.

Click only: parse, call :mod:`memocli.xmp_write`, print.
"""

from __future__ import annotations

from dataclasses import replace

import click

from .options import (
    diverse_options,
    echo_err,
    finish,
    open_cache,
    run_scoring,
    scoring_options,
)


class StarMapType(click.ParamType):
    """``PCT:STARS,...`` -> bands (:func:`memocli.xmp_fields.parse_star_map`)."""

    name = "PCT:STARS,..."

    def convert(self, value, param, ctx):
        from ..xmp_fields import parse_star_map

        if isinstance(value, tuple):
            return value
        try:
            return parse_star_map(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


def sidecar_option(f):
    """``--sidecar``: the sidecar naming (shared with ``memo watch``)."""
    from ..sidecars import SIDECAR_STYLES

    return click.option("--sidecar", type=click.Choice(SIDECAR_STYLES), default="darktable",
                        show_default=True,
                        help="Sidecar naming: darktable/digiKam <name>.<ext>.xmp, adobe "
                             "(Lightroom, Capture One) <basename>.xmp for RAW files only, "
                             "or both.")(f)


def xmp_field_options(f):
    """The opt-in fields and ``--overwrite`` (shared with ``memo watch``)."""
    from ..xmp_fields import DEFAULT_STAR_MAP, LABEL_COLOURS

    default_map = ",".join(f"{p:g}:{s}" for p, s in DEFAULT_STAR_MAP)
    f = click.option("--overwrite", is_flag=True,
                     help="Replace the user's own rating and label (memo records them, and "
                          "--remove puts them back).")(f)
    f = click.option("--keywords", is_flag=True,
                     help="Add a keyword for the photo's band: 'memo|top 5%' "
                          "(hierarchical) and 'memo top 5%' (flat); bands 1, 5, 10, 25, "
                          "50%.")(f)
    f = click.option("--label-colour", "--label-color", "label_colour",
                     type=click.Choice(LABEL_COLOURS), default="Green", show_default=True,
                     help="Colour of --label.")(f)
    f = click.option("--label", "label_top", type=click.FloatRange(0, 100, min_open=True),
                     metavar="PCT", help="Give the top PCT% a colour label.")(f)
    f = click.option("--star-map", type=StarMapType(), metavar="PCT:STARS,...",
                     help=f"Own percentile bands for --stars (implies it) [default: "
                          f"{default_map}].")(f)
    return click.option("--stars", is_flag=True,
                        help="Set xmp:Rating from the photo's percentile (see --star-map); "
                             "never over the user's own rating.")(f)


def make_plan(sidecar, embed, stars, star_map, label_top, label_colour, keywords, overwrite,
              removing=False, dry_run=False):
    """The :class:`~memocli.xmp_write.XmpPlan` of the options (exiftool checked up front)."""
    from ..embedded_xmp import exiftool_path
    from ..xmp_fields import DEFAULT_STAR_MAP
    from ..xmp_write import XmpPlan

    return XmpPlan(
        sidecar=sidecar,
        star_map=star_map or (DEFAULT_STAR_MAP if stars else None),
        label=None if label_top is None else (label_top, label_colour),
        keywords=keywords, overwrite=overwrite,
        embed=exiftool_path("--embed") if embed else None,
        removing=removing, dry_run=dry_run)


def report_summary(summary, plan, silent: bool) -> None:
    """One line on stderr: what was written; exit 1 when a sidecar or file failed."""
    if not silent:
        verb = "would change" if plan.dry_run else "changed"
        line = f"{verb} {summary.changed} sidecar(s)/file(s), {summary.unchanged} already " \
               "up to date"
        if summary.no_sidecar:
            line += (f"; {summary.no_sidecar} photo(s) not RAW get no Adobe sidecar "
                     "(Lightroom reads their own XMP: --embed)")
        echo_err(line)
    if summary.failed:
        raise click.ClickException(f"{len(summary.failed)} sidecar(s)/file(s) could not be "
                                   "changed (reasons above); the others were")


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True),
                metavar="PATH...")
@xmp_field_options
@sidecar_option
@click.option("--embed", is_flag=True,
              help="Also write into the XMP inside JPEG, TIFF and DNG files (what Lightroom "
                   "reads for them), through exiftool.")
@click.option("--remove", is_flag=True,
              help="Take memo's namespace and the ratings, labels and keywords memo wrote "
                   "back out of the sidecars of either naming (the user's values it "
                   "replaced are put back); scores nothing.")
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@diverse_options(group_by=False, top=False)
@scoring_options
def xmp(inputs, stars, star_map, label_top, label_colour, keywords, overwrite, sidecar,
        embed, remove, dry_run, diverse, trade_off, **scoring):
    """Write memo's ranking into XMP sidecars for Lightroom, darktable and digiKam.

    Photos without a cached score are scored first (the options of memo score). Each
    photo's sidecar gets memo's namespace (score, percentile and rank among the photos
    of this run, model, content hash, time); --stars, --label and --keywords also set
    the fields catalogues show. A rating or label the user set is never changed without
    --overwrite; what memo wrote is recorded as memo's, so a later run or --remove
    changes only that. Existing sidecars are merged into, never replaced: every other
    value (darktable's history stack) stays. A sidecar that cannot be read is left
    alone and reported (exit status 1).

    \b
    Examples:
      memo xmp ~/Photos
      memo xmp ~/Photos --stars --keywords
      memo xmp ~/Photos --label 10 --label-colour Red --sidecar both
      memo xmp ~/Photos --label 5 --diverse     # a varied 5% get the label
      memo xmp ~/Photos --stars --star-map 90:5,70:4,40:3,10:2,0:1 --dry-run
      memo xmp ~/Photos/*.jpg --stars --embed
      memo xmp ~/Photos --remove
    """
    from ..ranking import rank
    from ..scan import scan
    from ..xmp_write import carry_scores, diverse_label_picks, remove_xmp, write_xmp
    from .progress import progress_for_stderr

    if diverse and (label_top is None or remove):
        raise click.UsageError("--diverse picks which photos --label PCT marks: give --label")
    plan = make_plan(sidecar, embed, stars, star_map, label_top, label_colour, keywords,
                     overwrite, removing=remove, dry_run=dry_run)
    show = click.echo
    if remove:
        found = scan(inputs, include_hidden=scoring["hidden"])
        summary = remove_xmp([f.path for f in found.files], plan,
                             progress_for_stderr(scoring["silent"]), show)
        report_summary(summary, plan, scoring["silent"])
        return
    report = run_scoring(inputs, **scoring, with_features=diverse)
    ranked = rank(report.files)
    if diverse:
        plan = replace(plan, label_picks=diverse_label_picks(ranked, label_top, trade_off))
    summary = write_xmp(ranked, report.model_id, plan,
                        progress_for_stderr(scoring["silent"]), show)
    if summary.embedded:
        with open_cache(scoring["cache_path"], scoring["no_cache"]) as cache:
            carry_scores(cache, report.model_id, summary.embedded)
    report_summary(summary, plan, scoring["silent"])
    finish(report)


COMMANDS = [xmp]
