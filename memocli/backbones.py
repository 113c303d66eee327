"""Where a V-Net's backbone weights come from before training.

A backbone file is either a plain torchvision ResNet state dict, or a memo backbone file:
``{"format": "memo-backbone", "state_dict", "mean", "std", "source", "license"}``, which also
says what input normalisation the weights expect (see ``scripts/import_backbone.py``).
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import torch

from .catalog import installed_model_of
from .checkpoint import load_checkpoint
from .errors import MemoError
from .model import VNet, with_antialias
from .registry import IMAGENET_MEAN, IMAGENET_STD, get_config

log = logging.getLogger(__name__)

BACKBONE_FORMAT = "memo-backbone"
RANDOM_BACKBONE_WARNING = (
    "warning: the backbone is randomly initialised (no --backbone-weights or --init); "
    "results will be poor. Use --backbone-weights imagenet (downloads torchvision's "
    "ImageNet weights) or a backbone file."
)


def save_backbone_file(path: str | os.PathLike, state_dict: dict, mean, std,
                       source: str, license: str) -> None:
    """Write a memo backbone file (plain data, loads with ``weights_only=True``)."""
    torch.save({
        "format": BACKBONE_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "source": source,
        "license": license,
    }, path)


def read_backbone_file(path: str | os.PathLike) -> tuple[dict, tuple, tuple, str]:
    """``(state_dict, mean, std, description)`` of a backbone file."""
    path = Path(path)
    if not path.is_file():
        raise MemoError(f"{path}: no such backbone weights file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MemoError(f"{path}: not a plain-data state dict ({reason})") from None
    if not isinstance(payload, dict):
        raise MemoError(f"{path}: expected a state dict, got {type(payload).__name__}")
    if payload.get("format") == BACKBONE_FORMAT:
        desc = f"{path.name} ({payload.get('source', 'unknown source')})"
        return payload["state_dict"], tuple(payload["mean"]), tuple(payload["std"]), desc
    if not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise MemoError(f"{path}: not a torchvision state dict (values are not all tensors)")
    return payload, IMAGENET_MEAN, IMAGENET_STD, path.name


def _imagenet_state_dict(backbone: str) -> dict:
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(backbone).DEFAULT
        return weights.get_state_dict(progress=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise MemoError(
            f"could not download torchvision's ImageNet weights for {backbone} ({e}); "
            "pass a local file with --backbone-weights PATH"
        ) from None


def with_heads(model: VNet, heads: tuple[str, ...]) -> tuple[VNet, list[str]]:
    """``model`` with the heads ``heads``, and the names of those it did not have.

    The backbone is kept; a head of the same name is kept, a new one starts as a copy of
    the first head (a trained head is a better start than a random one). The mixer is kept
    when the heads keep their number (only the first one renamed: see
    :func:`kept_heads_for`); otherwise the new model has a fresh one.
    """
    if model.cfg.heads == heads:
        return model, []
    keeps_mixer = model.mixer is not None and heads[1:] == model.cfg.heads[1:]
    new = VNet(model.cfg.with_heads(heads, model.cfg.mixer_domains if keeps_mixer else 1))
    new.backbone.load_state_dict(model.backbone.state_dict())
    for name in heads:
        source = model.heads[name] if name in model.heads else model.primary_head
        new.heads[name].load_state_dict(source.state_dict())
    if keeps_mixer:
        new.mixer.load_state_dict(model.mixer.state_dict())
    return new, [name for name in heads if name not in model.heads]


def kept_heads_for(model: VNet, heads: tuple[str, ...]) -> tuple[str, ...]:
    """The heads a fine-tune of ``model`` on sources ``heads`` trains and keeps.

    One source fine-tuning a model with several heads and a mixer (the installed default:
    a human-score head and teacher heads for photos of every kind) trains the first head
    and keeps the others and the mixer as they are, so photos unlike the new data keep
    their scores. Otherwise the sources' heads only.
    """
    if len(heads) == 1 and model.mixer is not None and heads[0] not in model.cfg.heads[1:]:
        return (heads[0], *model.cfg.heads[1:])
    return heads


def initial_model(model_name: str, backbone_weights: str | None, init: str | None,
                  warn=print, heads: tuple[str, ...] = ("score",), input_blur: float | None = None,
                  blur_strides: bool | None = None) -> tuple[VNet, dict]:
    """Build the model a training run starts from, and metadata saying how.

    Args:
        model_name: registered architecture.
        backbone_weights: ``imagenet``, a backbone file, or None.
        init: a memo checkpoint to fine-tune from (its config wins), or None: then, without
            ``backbone_weights``, the installed model of that architecture when there is one
            (:func:`memocli.catalog.installed_model_of`), else a random backbone.
        warn: called with a warning when the backbone stays random.
        heads: the model's heads (one per training source); with ``init``, heads the
            checkpoint lacks are listed in the metadata as ``new_heads``.
        input_blur, blur_strides: the low-passes of the model to train
            (:class:`~memocli.registry.ModelConfig`); None keeps the starting model's.
    """
    model, meta = _starting_model(model_name, backbone_weights, init, warn, heads)
    return with_antialias(model, input_blur, blur_strides), meta


def _starting_model(model_name: str, backbone_weights: str | None, init: str | None, warn,
                    heads: tuple[str, ...]) -> tuple[VNet, dict]:
    """:func:`initial_model` before its low-passes are set."""
    if init and backbone_weights:
        raise MemoError("use either --init or --backbone-weights, not both")
    if init is None and backbone_weights is None:
        init = installed_model_of(model_name)  # fine-tune: works offline, and learns fast
        if init is not None:
            warn(f"fine-tuning from the installed model {init} (no --init or "
                 "--backbone-weights; --backbone-weights imagenet|FILE starts from a backbone)")
    if init:
        loaded = load_checkpoint(init, expect_arch=model_name)
        origin = loaded.meta.get("backbone_init", "unknown")
        trained = tuple(heads)
        model, new_heads = with_heads(loaded.model, kept_heads_for(loaded.model, trained))
        kept = [h for h in model.cfg.heads if h not in trained]
        dropped = [h for h in loaded.model.cfg.heads if h not in model.cfg.heads]
        if kept:
            warn(f"keeping {init}'s heads {', '.join(kept)} and its mixer: your data trains "
                 f"the head {trained[0]!r} (in place of {loaded.model.cfg.heads[0]!r}); "
                 "photos unlike it keep their scores")
        elif dropped or (loaded.model.mixer is not None and model.mixer is None):
            warn(f"warning: {init}'s heads {', '.join(dropped) or '(none)'} are not among "
                 "the training sources and are dropped, and its mixer is reset (it passes "
                 "the first head's score through); train one source to keep them all")
        return model, {"backbone_init": origin, "init": str(init), "new_heads": new_heads,
                       "kept_heads": kept}
    cfg = get_config(model_name).with_heads(tuple(heads))
    if backbone_weights is None:
        warn(RANDOM_BACKBONE_WARNING)
        return VNet(cfg), {"backbone_init": "random", "init": None}
    if backbone_weights == "imagenet":
        state, mean, std, desc = _imagenet_state_dict(cfg.backbone), IMAGENET_MEAN, IMAGENET_STD, \
            f"torchvision ImageNet ({cfg.backbone})"
    else:
        state, mean, std, desc = read_backbone_file(backbone_weights)
    model = VNet(cfg.with_normalisation(mean, std))
    model.load_backbone_state(state)
    return model, {"backbone_init": desc, "init": None}
