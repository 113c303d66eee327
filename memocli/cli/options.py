"""Option bundles shared by several commands."""

from __future__ import annotations

import click

from ..device import DEVICE_NAMES, PRECISIONS
from ..escape import terminal_message
from ..registry import DEFAULT_MODEL, MODELS


def _check_device(ctx, param, value: str) -> str:
    """Reject a misspelt device up front, even when nothing ends up needing the model."""
    if not DEVICE_NAMES.fullmatch(value):
        raise click.BadParameter(f"'{value}' is not auto, cpu, cuda, cuda:N or mps")
    return value


def device_option(f):
    """``--device``: auto (CUDA, else MPS, else CPU), or a torch device name."""
    return click.option(
        "--device", default="auto", show_default=True, envvar="MEMO_DEVICE",
        callback=_check_device,
        help="cpu, cuda, cuda:N, mps, or auto (CUDA, else Apple MPS, else CPU).",
    )(f)


def precision_option(default: str = "auto"):
    """``--precision``: the arithmetic scoring runs in (see memocli.device.pick_dtype)."""
    return click.option(
        "--precision", type=click.Choice(PRECISIONS), default=default, show_default=True,
        envvar="MEMO_PRECISION",
        help="auto: float16 on CUDA, bfloat16 on CPUs that have it in hardware, else fp32. "
             "Scores agree with fp32 within 0.01.",
    )


def model_option(f):
    """``-m/--model``: a registered V-Net architecture."""
    return click.option(
        "-m", "--model", "model_name", type=click.Choice(sorted(MODELS)), default=DEFAULT_MODEL,
        show_default=True, envvar="MEMO_MODEL", help="V-Net architecture (backbone).",
    )(f)


def silent_option(f):
    """``-s/--silent``: no progress bars."""
    return click.option("-s", "--silent", is_flag=True, help="No progress bars.")(f)


def batch_options(default: int | None = 32):
    """``--batch-size`` (None: per device, see memocli.inference) and ``--workers``."""

    def decorate(f):
        f = click.option("--workers", type=click.IntRange(min=0), default=None,
                         help="Image decoding processes [default: one per spare core, "
                              "max 8].")(f)
        shown = default if default is not None else "16 on a CPU, 64 on a GPU"
        return click.option("--batch-size", type=click.IntRange(min=1), default=default,
                            help=f"Images per batch [default: {shown}].")(f)

    return decorate


class WeightsType(click.ParamType):
    """``--weights``: a model name from ``memo models`` (``r152``) or a checkpoint path,
    given to the command as a :class:`~pathlib.Path`."""

    name = "NAME|CKPT"

    def convert(self, value, param, ctx):
        from ..catalog import resolve_weights
        from ..errors import MemoError

        try:
            return resolve_weights(value)
        except MemoError as e:
            self.fail(str(e), param, ctx)


WEIGHTS_HELP = ("A model name from `memo models` (r50, r152) or a checkpoint file "
                "[default: $MEMO_WEIGHTS, else r50, installed with memo].")


def echo_err(message: str) -> None:
    """Diagnostics go to stderr so stdout stays data (terminal-safe: control characters
    of file names in ``message`` are escaped)."""
    click.echo(terminal_message(message), err=True)


def burst_options(f):
    """``--burst-seconds`` and ``--burst-similarity``: how photos are grouped into bursts."""
    from ..bursts import DEFAULT_SECONDS, DEFAULT_SIMILARITY

    f = click.option("--burst-similarity", type=click.FloatRange(0, 1), metavar="S",
                     default=DEFAULT_SIMILARITY, show_default=True,
                     help="Least cosine similarity of the model's features for two photos "
                          "to share a burst (without a time taken: half-way to 1).")(f)
    return click.option("--burst-seconds", type=click.FloatRange(min=0), metavar="N",
                        default=DEFAULT_SECONDS, show_default=True,
                        help="Most seconds between the times taken of two frames of a "
                             "burst.")(f)
