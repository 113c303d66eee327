"""``memo models``: the models memo knows by name, where each is, and what it is."""

from __future__ import annotations

import json
import os

import click

from ..escape import for_terminal


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models(as_json):
    """List the models --weights accepts by name: where each file is, its size, what it is.

    Names are looked up in your model folder ($MEMO_HOME/weights, else weights in your
    user data folder, e.g. ~/.local/share/memo/weights on Linux) first, then in the models
    installed with memo. The default model (r50) comes with memo; opt-in ones go into your
    model folder. --weights also takes any checkpoint path, e.g. one `memo train` wrote.

    \b
    Examples:
      memo models
      memo score ~/Photos --weights r152
    """
    from ..catalog import CATALOG, DEFAULT_NAME, locate, user_weights_dir

    rows = []
    for model in CATALOG:
        path = locate(model)
        rows.append({"name": model.name, "default": model.name == DEFAULT_NAME,
                     "path": str(path) if path else None,
                     "size_bytes": path.stat().st_size if path else None,
                     "about": model.about})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row, model in zip(rows, CATALOG, strict=True):
        size = _size_text(row["size_bytes"]) if row["path"] else "-"
        where = (for_terminal(row["path"]) if row["path"] else
                 f"not installed: put {model.filename} into {for_terminal(user_weights_dir())}")
        click.echo(f"{row['name']:<8} {size:>7}  {where}")
        click.echo(f"{'':<8} {'':>7}  {row['about']}")
    override = os.environ.get("MEMO_WEIGHTS")
    if override:
        click.echo(f"default: $MEMO_WEIGHTS = {for_terminal(override)}")


def _size_text(size: int) -> str:
    """``64 MB``, or ``2 kB`` for a manifest."""
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{max(1, round(size / 1e3))} kB"


COMMANDS = [models]
