"""``memo explain``: Grad-CAM heatmaps of what makes a photo memorable."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..files import printable
from ..registry import DEFAULT_MODEL, MODELS
from .options import WEIGHTS_HELP, WeightsType, device_option, echo_err

if TYPE_CHECKING:
    from ..explain import Explained


#: What --layer can name, checked before the model loads (blocks against it after).
_LAYER_NAME = re.compile(r"layer[1-4](\.\d+)?")


def _check_layer(ctx, param, value: str | None) -> str | None:
    if value is not None and not _LAYER_NAME.fullmatch(value):
        raise click.BadParameter(f"unknown layer '{value}'; choose a stage (layer1 ... "
                                 "layer4) or one of its blocks (layer4.2)")
    return value


def _layer_help() -> str:
    blocks = ", ".join(f"layer{i}.0-{n - 1}" for i, n in
                       enumerate(MODELS[DEFAULT_MODEL].stage_blocks, 1))
    return (
        "Backbone layer to explain: a stage (layer1, layer2, layer3, layer4) or one of its "
        f"blocks ({DEFAULT_MODEL}: {blocks}; deeper backbones have more) "
        "[default: the last block of layer4]. Earlier layers give finer but less semantic maps."
    )


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path),
                metavar="PATH...")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the pictures, created if needed [default: ./memo-explain].")
@click.option("--beside", is_flag=True,
              help="Write each picture beside its photo instead, inside the library (photo "
                   "managers such as Lightroom or digiKam may import them as photos).")
@click.option("--layer", metavar="NAME", callback=_check_layer, help=_layer_help())
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Weight of the heatmap in the blend (0: photo only, 1: heatmap only).")
@click.option("--side-by-side", is_flag=True,
              help="Write photo | overlay, with the score in a band underneath.")
@click.option("--heatmap-only", is_flag=True,
              help="Write the raw map instead: 8-bit grayscale PNG (img.memo.png), "
                   "255 = the strongest evidence.")
@click.option("--hidden", is_flag=True,
              help="Also look inside hidden folders (names starting with '.').")
@click.option("-w", "--weights", type=WeightsType(), help=WEIGHTS_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per Grad-CAM pass.")
@device_option
def explain(inputs, out, beside, layer, alpha, side_by_side, heatmap_only, hidden, weights,
            batch_size, device):
    """Grad-CAM heatmaps: which parts of a photo raise its predicted memorability.

    PATH... are image files and folders (searched as memo score searches them). For each
    photo writes NAME.memo.jpg into ./memo-explain (or --out; --beside: next to the photo):
    the heatmap blended over the photo at its own resolution and orientation, red where
    the region raises the score, blue where it does not, with the score written on it.
    memo's scans (score, export, report) never rank these *.memo.jpg / *.memo.png files.
    Prints "PHOTO -> PICTURE  (score S)" per photo; unreadable files are reported on
    stderr, the rest are still done, and the exit status is then 1.

    \b
    Examples:
      memo explain img.jpg
      memo explain ~/Photos/2026-trip --out trip-heatmaps/
      memo explain *.jpg --layer layer4 --alpha 0.5 --side-by-side
      memo explain img.jpg --heatmap-only --layer layer3 --out maps/
    """
    from ..ensemble import load_predictor
    from ..explain import DEFAULT_FOLDER, explain_files
    from ..files import default_weights_path

    if side_by_side and heatmap_only:
        raise click.UsageError("--side-by-side and --heatmap-only exclude each other")
    if beside and out is not None:
        raise click.UsageError("--beside and --out exclude each other")
    folder = None if beside else (out or DEFAULT_FOLDER)
    results = explain_files(
        inputs, folder,
        lambda: load_predictor(weights or default_weights_path(), device, "fp32"),
        include_hidden=hidden, layer=layer, alpha=alpha, side_by_side=side_by_side,
        heatmap_only=heatmap_only, batch_size=batch_size)
    done, failed = print_explanations(results)
    if folder is not None and done:
        echo_err(f"{done} picture(s) in {printable(folder.resolve())}")
    if failed:
        raise click.ClickException(f"{failed} of {done + failed} photo(s) failed")


def print_explanations(results: Iterable[Explained],
                       echo: Callable[[str], None] = click.echo) -> tuple[int, int]:
    """Print each result: ``PHOTO -> PICTURE  (score S)`` with ``echo``, problems on
    stderr. Returns how many pictures were written and how many photos failed."""
    from ..gradcam import UnknownLayer

    done = failed = 0
    try:
        for result in results:
            if not result.ok:
                failed += 1
                echo_err(f"{printable(result.source)}: {result.error}")
                continue
            done += 1
            echo(f"{printable(result.source)} -> {printable(result.output)}  "
                 f"(score {result.score:.2f})")
            if result.flat:
                echo_err(f"{printable(result.source)}: flat map, no region raises the "
                         f"score at {result.layer}")
    except UnknownLayer as e:
        raise click.BadParameter(str(e), param_hint="--layer") from None
    return done, failed


COMMANDS = [explain]
