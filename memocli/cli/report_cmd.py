"""``memo report``: an HTML contact sheet of the ranked photos, bursts grouped."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    burst_options,
    diverse_options,
    echo_err,
    finish,
    run_scoring,
    scoring_options,
)
from .progress import progress_for_stderr


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True),
                metavar="PATH...")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              default="memo-report.html", show_default=True,
              help="HTML file to write (replaced atomically; missing folders are created).")
@click.option("--heatmaps", "n_heatmaps", type=click.IntRange(min=0), default=12,
              show_default=True, metavar="K",
              help="Grad-CAM overlays for the K most memorable photos, one per burst "
                   "(0: none).")
@click.option("--title", help="Page title [default: memo report: PATH...].")
@diverse_options(top=False)
@burst_options
@scoring_options
def report(inputs, out, n_heatmaps, title, diverse, trade_off, group_by, burst_seconds,
           burst_similarity, **scoring):
    """Write an HTML contact sheet of the photos, most memorable first.

    One self-contained file (thumbnails embedded, no network needed): a grid of the
    photos with rank, score, percentile, date taken and camera; bursts (photos taken
    seconds apart that look alike) grouped with their best frame marked; a histogram
    of the scores; Grad-CAM heatmaps of the top K on hover or click. Scoring works as
    in memo score (same cache and options).

    \b
    Examples:
      memo report ~/Photos/2026-trip --out trip.html
      memo report samples/ --heatmaps 3 --out samples.html
      memo report ~/Photos --burst-seconds 10 --title "Summer 2026"
      memo report ~/Photos --diverse --out varied.html
      memo report ~/Photos --group-by day --out days.html
    """
    from .. import selection
    from ..bursts import rank_bursts
    from ..files import check_output_file, os_reason, printable
    from ..report import grad_cams, make_thumbs, write_report

    check_output_file(out)  # said now, not after scoring
    result = run_scoring(inputs, **scoring, with_features=True)
    silent = scoring["silent"]
    ranked = rank_bursts(result.files, burst_seconds, burst_similarity)
    if group_by:  # every photo, its group's best first, groups by their best photo
        ranked = selection.grouped(ranked, group_by, None, trade_off if diverse else None)
    elif diverse:
        ranked = selection.diverse(ranked, trade_off=trade_off)
    best = [r.item.path for r in ranked if r.burst == r.rank][:n_heatmaps]
    cams, failed = {}, 0
    if best:  # the model scoring loaded, or loaded now once
        maps = grad_cams(result.source.load(), best, min(scoring["batch_size"] or 16, 16))
        for path, m in maps.items():
            if m.error is None:
                cams[path] = m
            else:
                failed += 1
                echo_err(f"no heatmap for {printable(path)}: {m.error}")
    with progress_for_stderr(silent).stage(len(ranked), "thumbnails") as advance:
        thumbs = make_thumbs(ranked, cams, advance)
    for r, thumb in zip(ranked, thumbs, strict=True):
        if thumb.error:
            echo_err(f"no thumbnail for {printable(r.item.path)}: {thumb.error}")
    title = title or "memo report: " + ", ".join(inputs)
    try:
        size = write_report(ranked, thumbs, result.model_id, title, out)
    except OSError as e:
        raise click.ClickException(f"{out}: cannot write: {os_reason(e)}") from None
    if not silent:
        echo_err(f"wrote {out}: {len(ranked)} photo(s), {len(cams)} heatmap(s), "
                 f"{size / 1e6:.1f} MB")
    finish(result, failed)


COMMANDS = [report]
