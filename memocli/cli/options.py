"""Option bundles shared by several commands."""

from __future__ import annotations

import click

from ..registry import DEFAULT_MODEL, MODELS


def device_option(f):
    """``--device``: auto (CUDA, else MPS, else CPU), or a torch device name."""
    return click.option(
        "--device", default="auto", show_default=True, envvar="MEMO_DEVICE",
        help="cpu, cuda, cuda:N, mps, or auto (CUDA, else Apple MPS, else CPU).",
    )(f)


def model_option(f):
    """``-m/--model``: a registered V-Net architecture."""
    return click.option(
        "-m", "--model", "model_name", type=click.Choice(sorted(MODELS)), default=DEFAULT_MODEL,
        show_default=True, envvar="MEMO_MODEL", help="V-Net architecture (backbone).",
    )(f)


def silent_option(f):
    """``-s/--silent``: no progress bars."""
    return click.option("-s", "--silent", is_flag=True, help="No progress bars.")(f)


def batch_options(f):
    """``--batch-size`` and ``--workers``."""
    f = click.option("--workers", type=click.IntRange(min=0), default=None,
                     help="Image decoding processes [default: one per spare core, max 8].")(f)
    return click.option("--batch-size", type=click.IntRange(min=1), default=32,
                        show_default=True, help="Images per batch.")(f)


def echo_err(message: str) -> None:
    """Diagnostics go to stderr so stdout stays data."""
    click.echo(message, err=True)
