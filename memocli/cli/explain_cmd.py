"""``memo explain``: Grad-CAM heatmaps of what makes a photo memorable."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..files import printable
from ..registry import DEFAULT_MODEL, MODELS
from .options import WEIGHTS_HELP, WeightsType, device_option, echo_err

if TYPE_CHECKING:
    from ..predictor import Predictor


#: What --layer can name, checked before the model loads (blocks against it after).
_LAYER_NAME = re.compile(r"layer[1-4](\.\d+)?")


def _layer_help() -> str:
    blocks = ", ".join(f"layer{i}.0-{n - 1}" for i, n in
                       enumerate(MODELS[DEFAULT_MODEL].stage_blocks, 1))
    return (
        "Backbone layer to explain: a stage (layer1, layer2, layer3, layer4) or one of its "
        f"blocks ({DEFAULT_MODEL}: {blocks}; deeper backbones have more) "
        "[default: the last block of layer4]. Earlier layers give finer but less semantic maps."
    )


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the pictures, created if needed [default: beside each photo].")
@click.option("--layer", metavar="NAME", help=_layer_help())
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Weight of the heatmap in the blend (0: photo only, 1: heatmap only).")
@click.option("--side-by-side", is_flag=True,
              help="Write photo | overlay, with the score in a band underneath.")
@click.option("--heatmap-only", is_flag=True,
              help="Write the raw map instead: 8-bit grayscale PNG (img.memo.png), "
                   "255 = the strongest evidence.")
@click.option("-w", "--weights", type=WeightsType(), help=WEIGHTS_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per Grad-CAM pass.")
@device_option
def explain(images, out, layer, alpha, side_by_side, heatmap_only, weights, batch_size, device):
    """Grad-CAM heatmaps: which parts of a photo raise its predicted memorability.

    For each IMAGE writes IMAGE.memo.jpg (beside it by default, or in --out): the heatmap
    blended over the photo at its own resolution and orientation, red where the region
    raises the score, blue where it does not, with the score written on it. memo's scans
    (score, export, report) never rank these *.memo.jpg / *.memo.png files. Prints
    "IMAGE -> OUTPUT  (score S)" per file; unreadable files are reported on stderr, the
    rest are still done, and the exit status is then 1.

    \b
    Examples:
      memo explain img.jpg
      memo explain *.jpg --out heatmaps/ --layer layer4 --alpha 0.5 --side-by-side
      memo explain img.jpg --heatmap-only --layer layer3 --out maps/
    """
    from ..files import default_weights_path
    from ..predictor import Predictor

    if side_by_side and heatmap_only:
        raise click.UsageError("--side-by-side and --heatmap-only exclude each other")
    failed = write_explanations(
        images, out,
        lambda: Predictor.from_checkpoint(weights or default_weights_path(), device, "fp32"),
        layer=layer, alpha=alpha, side_by_side=side_by_side, heatmap_only=heatmap_only,
        batch_size=batch_size)
    if failed:
        raise click.ClickException(f"{failed} of {len(images)} image(s) failed")


def write_explanations(images, out: Path | None, predictor: Callable[[], Predictor],
                       echo: Callable[[str], None] = click.echo, **options) -> int:
    """Explain ``images`` into ``out`` (or beside them); returns the number that failed.

    ``predictor`` gives the model once paths and options are checked (it may load it).
    ``echo`` prints each file's ``IMAGE -> OUTPUT`` line (problems go to stderr);
    ``options`` are :func:`memocli.explain.explain_images`'s keyword options.
    """
    from ..errors import MemoError
    from ..explain import explain_images
    from ..gradcam import resolve_layer

    if out is not None and out.exists() and not out.is_dir():
        raise click.BadParameter(f"{out} exists and is not a folder", param_hint="--out")
    if options.get("layer") is not None and not _LAYER_NAME.fullmatch(options["layer"]):
        raise click.BadParameter(f"unknown layer '{options['layer']}'; choose a stage "
                                 "(layer1 ... layer4) or one of its blocks (layer4.2)",
                                 param_hint="--layer")
    sources, seen, failed = [], set(), 0
    for path in map(Path, images):  # the same file twice is explained once
        key = path.resolve()
        if not path.exists():  # said before minutes of model loading, not after
            failed += 1
            echo_err(f"{printable(path)}: no such file")
        elif key not in seen:
            seen.add(key)
            sources.append(path)
    if not sources:
        return failed
    model = predictor()
    try:
        options["layer"] = layer = resolve_layer(model.model, options.get("layer"))
    except MemoError as e:
        raise click.BadParameter(str(e), param_hint="--layer") from None

    for result in explain_images(model, sources, out, **options):
        if result.ok:
            echo(f"{printable(result.source)} -> {printable(result.output)}  "
                 f"(score {result.score:.2f})")
            if result.flat:
                echo_err(f"{printable(result.source)}: flat map, no region raises the score "
                         f"at {layer}")
        else:
            failed += 1
            echo_err(f"{printable(result.source)}: {result.error}")
    return failed


COMMANDS = [explain]
