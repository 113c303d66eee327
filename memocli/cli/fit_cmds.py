"""``memo fit-mixer`` and ``memo fit-ensemble``: the small fits that follow training."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import MemoError
from .options import (
    batch_options,
    cache_options,
    device_option,
    echo_err,
    engine_option,
    open_cache,
    precision_option,
    progress_for_stderr,
    silent_option,
)


def _spec(ctx, param, value):
    """A ``DIR[:SPLIT]`` option as a SourceSpec (a malformed one is a usage error)."""
    from ..sources import SourceSpec

    try:
        spec = SourceSpec.parse(value)
    except MemoError as e:
        raise click.BadParameter(str(e)) from None
    if not Path(spec.data).exists():
        raise click.BadParameter(f"{spec.data}: no such folder or file")
    return spec


def _blend(ctx, param, value):
    """``HEAD=W,...`` as ``{head: weight}`` (None when not given)."""
    if value is None:
        return None
    try:
        pairs = [part.split("=", 1) for part in value.split(",")]
        return {name.strip(): float(weight) for name, weight in pairs}
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a blend like lnsim=0.8,teacher1=0.2"
                                 ) from None


def _new_file(out: str, force: bool) -> Path:
    """``--out``, refused when it exists (unless ``--force``) or cannot be written."""
    from ..files import check_output_file

    path = Path(out)
    if path.exists() and not force:
        raise click.UsageError(f"{out} exists; choose another --out, or --force to replace it")
    check_output_file(path)
    return path


@click.command("fit-mixer")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--scene", required=True, metavar="DIR[:SPLIT]", callback=_spec,
              help="The first head's source (read as memo train --data reads it): its "
                   "training photos teach the gate, its validation photos set the scene "
                   "domain's scale.")
@click.option("--other", required=True, metavar="DIR[:SPLIT]", callback=_spec,
              help="The other heads' source, the same way for the other domain.")
@click.option("--fold", type=click.IntRange(min=1), default=1, show_default=True,
              help="Which fold of the sources (use the one the model was trained on).")
@click.option("--val-frac", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.2, show_default=True,
              help="Held-out share of a one-file source, as memo train --val-frac.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="The other heads' share in the scene domain.")
@click.option("--beta", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="The first head's share in the other domain.")
@click.option("--scene-blend", callback=_blend, metavar="HEAD=W,...",
              help="The scene domain's blend head by head (in place of --alpha), e.g. "
                   "lnsim=0.5,scene=0.4,teacher1=0.1; heads left out weigh 0.")
@click.option("--other-blend", callback=_blend, metavar="HEAD=W,...",
              help="The other domain's blend head by head (in place of --beta).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="The checkpoint to write (the input's weights with the fitted mixer).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--feature-cache", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Keep the backbone's features in DIR (shared with memo "
                                  "train --feature-cache).")
@click.option("--json", "as_json", is_flag=True, help="Print what the fit saw as JSON.")
@batch_options()
@device_option
@silent_option
def fit_mixer(checkpoint, scene, other, fold, val_frac, alpha, beta, scene_blend, other_blend,
              out, force, feature_cache, as_json, batch_size, workers, device, silent):
    """Fit the gate and blends of a model trained on two sources (memo train --data A
    --data B): one score per photo, on the scene source's scale for photos like it and on
    the other source's scale for the rest. The backbone and heads stay as they are.

    \b
    Example:
      memo train --data lnsim/ --data pool/:teacher --out runs/two ...
      memo fit-mixer runs/two/best.pt --scene lnsim/ --other pool/:teacher --out mixed.pt
    """
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..device import pick_device
    from ..features import FeatureBank
    from ..mixer_fit import MixerRecipe, named_blend
    from ..mixer_fit import fit_mixer as fit
    from ..sources import load_source_splits

    out_path = _new_file(out, force)
    scene_splits = load_source_splits(scene, fold, val_frac)
    other_splits = load_source_splits(other, fold, val_frac)
    dev = pick_device(device)
    loaded = load_checkpoint(checkpoint, device=dev)
    # float32 on every machine: the same inputs give the same mixer wherever it is fitted
    bank = FeatureBank(loaded.model, dev, batch_size, workers, silent, store=feature_cache,
                       precision="fp32")
    recipe = MixerRecipe(alpha=alpha, beta=beta, scene_blend=scene_blend,
                         other_blend=other_blend)
    for named in (scene_blend, other_blend):  # a blend naming no head of the model: said now
        if named:
            named_blend(loaded.model.cfg.heads, named)
    model, report = fit(loaded.model, scene_splits, other_splits, bank, recipe)
    meta = {k: v for k, v in loaded.meta.items()
            if k not in ("format", "format_version", "arch", "cfg", "memo_version")}
    meta["training"] = {**meta.get("training", {}), "mixer": {
        "fitted_by": "memo fit-mixer", "alpha": alpha, "beta": beta, "l2": recipe.l2,
        "scene_blend": scene_blend, "other_blend": other_blend,
        "fold": fold, "scene": scene_splits.describe(), "other": other_splits.describe()}}
    meta["metrics"] = {**meta.get("metrics", {}), "mixer": report}
    save_checkpoint(out_path, model, **meta)
    if as_json:
        click.echo(json.dumps(report))
    else:
        for domain, r in report.items():
            click.echo(f"{domain}: gate {r['gate_mean_val']:.2f} on its val photos  "
                       f"val rho {r['val_rho']:.4f}  mse {r['val_mse']:.4f}  n {r['val_n']}")
    echo_err(f"wrote {out_path}")


@click.command("fit-ensemble")
@click.argument("members", nargs=-1, required=True)
@click.option("--scene", "data", required=True, type=click.Path(exists=True),
              help="A labelled dataset (as memo evaluate reads it) of the scene domain.")
@click.option("--split", default="train_1", show_default=True,
              help="Its split the members are standardised and scaled on.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="The manifest to write (.json); --weights takes it like a checkpoint.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@cache_options
@batch_options(default=None)
@device_option
@precision_option()
@engine_option
@silent_option
def fit_ensemble(members, data, split, out, force, cache_path, no_cache, batch_size, workers,
                 device, precision, engine, silent):
    """Write an ensemble of MEMBERS (model names or checkpoints): each member's scores
    standardised on a labelled split, their mean mapped to its labels by least squares.
    No weights are copied: the manifest names each member by digest.

    \b
    Example:
      memo fit-ensemble r50 r152 --scene lnsim/ --split train_1 --out accurate.json
      memo score ~/Photos --weights accurate.json
    """
    from ..catalog import resolve_weights
    from ..data import load_split
    from ..ensemble import member_reference
    from ..ensemble_fit import fit_manifest, scores_of
    from ..files import hash_file

    if not out.lower().endswith(".json"):
        raise click.BadParameter("an ensemble manifest's name ends in .json", param_hint="--out")
    out_path = _new_file(out, force)
    files = [resolve_weights(m) for m in members]
    items = load_split(data, split)
    paths = [i.path for i in items]
    scoring = {"device": device, "precision": precision, "engine": engine,
               "batch_size": batch_size, "workers": workers,
               "progress": progress_for_stderr(silent)}
    with open_cache(cache_path, no_cache) as cache:
        member_scores = [scores_of(cache, f, paths, **scoring) for f in files]
    references = [member_reference(m, out_path) for m in members]
    manifest = fit_manifest(references, [hash_file(f) for f in files], member_scores,
                            [i.score for i in items],
                            {"data": str(data), "split": split, "n": len(items)})
    manifest.write(out_path)
    for member in manifest.members:
        click.echo(f"{member.weights}: mean {member.mean:.4f}  sd {member.std:.4f}")
    click.echo(f"scale: {manifest.intercept:.4f} + {manifest.slope:.4f} x mean z")
    echo_err(f"wrote {out_path}")


@click.command("mirror-average")
@click.argument("model")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="The manifest to write (.json); --weights takes it like a checkpoint.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def mirror_average_cmd(model, out, force):
    """Write a manifest that scores each photo with MODEL (a model name or a checkpoint) as
    the mean of its own and its mirror image's scores: scores that small crops, re-saves
    and mirroring move less, at twice the time. Nothing is fitted or copied: the manifest
    names MODEL by digest. `--weights stable` is this of the default model.

    \b
    Example:
      memo mirror-average runs/f1/best.pt --out f1-stable.json
      memo score ~/Photos --weights f1-stable.json
    """
    from ..catalog import resolve_weights
    from ..checkpoint import load_checkpoint
    from ..ensemble import is_manifest, mirror_average

    if not out.lower().endswith(".json"):
        raise click.BadParameter("an ensemble manifest's name ends in .json", param_hint="--out")
    checkpoint = resolve_weights(model)
    if is_manifest(checkpoint):
        raise click.BadParameter(f"{model} is an ensemble manifest; give a checkpoint",
                                 param_hint="MODEL")
    out_path = _new_file(out, force)
    load_checkpoint(checkpoint)  # a memo checkpoint, or a one-line error saying what it is
    mirror_average(model, out_path).write(out_path)
    echo_err(f"wrote {out_path}")


COMMANDS = [fit_mixer, fit_ensemble, mirror_average_cmd]
