"""Memo checkpoints: one plain-data file holding weights plus the metadata to use them.

A checkpoint is a dict of tensors, strings and numbers only, so it loads with
``torch.load(weights_only=True)``. It carries the architecture config (input size and
normalisation included), what it was trained on and how well it did, so a score is never
produced by a mismatched model.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from . import checkpoint_checks as checks
from .errors import MemoError
from .files import atomic_write, checkpoint_problem, hash_file, not_a_file
from .model import VNet, upgrade_state_dict
from .registry import MODELS, ModelConfig

FORMAT = "memo-checkpoint"
FORMAT_VERSION = 1
_ARCH_FIELDS = ("backbone", "proj_channels", "lstm_hidden", "stage_blocks")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's file format is a zip archive


@dataclass
class LoadedModel:
    """A model with the checkpoint metadata it came from.

    ``checkpoint_id`` (architecture + content digest) names the weights; scores are cached
    under :attr:`memocli.predictor.Predictor.model_id`, which adds the preprocessing and
    the precision.
    """

    model: VNet
    meta: dict[str, Any]
    checkpoint_id: str

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg


def _clean_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP / torch.compile wrapper prefixes from parameter names."""
    cleaned = {}
    for key, value in state_dict.items():
        key = str(key)
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        cleaned[key] = value
    return cleaned


def save_checkpoint(
    path: str | os.PathLike, model: VNet, half: bool = False, **meta: Any
) -> Path:
    """Write ``model`` and ``meta`` atomically (temp file + rename).

    Args:
        path: destination file.
        model: the V-Net to save.
        half: store floating-point tensors as fp16 (half the size; loaded back as fp32).
        **meta: plain-data metadata (metrics, train_data, training, backbone_init, ...).
    """
    path = Path(path)
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
        for k, v in _clean_state_dict(model.state_dict()).items()
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": model.cfg.name,
        "cfg": model.cfg.to_dict(),
        "memo_version": __version__,
        **meta,
        "state_dict": state,
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint's raw dict safely, refusing anything that is not one.

    Tensors are memory-mapped, not read: nothing large is allocated before
    :func:`memocli.checkpoint_checks.check_weights` has seen their shapes.
    """
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise MemoError(f"{path}: {checkpoint_problem(problem)}")
    with open(path, "rb") as f:
        if f.read(4) != _ZIP_MAGIC:  # a text file, a photo, a README, an old torch pickle
            raise MemoError(f"{path} is not a memo checkpoint")
    checks.check_file(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:  # torch's message advises weights_only=False: never
        raise MemoError(f"{path}: refused, not a plain-data memo checkpoint (it holds "
                        "Python objects, which memo never unpickles)") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MemoError(f"{path}: unreadable checkpoint (truncated or corrupt?): {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MemoError(f"{path}: not a memo checkpoint (no '{FORMAT}' header)")
    checks.check_payload(payload, path)
    if payload["format_version"] > FORMAT_VERSION:
        raise MemoError(
            f"{path}: checkpoint format {payload['format_version']} is newer than this memo "
            f"understands ({FORMAT_VERSION}); upgrade memo"
        )
    return payload


def config_from_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> ModelConfig:
    """The checkpoint's config, checked against the registered architecture of that name."""
    try:
        cfg = ModelConfig.from_dict(payload["cfg"])
    except (KeyError, TypeError, MemoError) as e:
        raise MemoError(f"{path}: checkpoint has no usable model config ({e})") from None
    registered = MODELS.get(cfg.name)
    if registered is not None:
        for field_name in _ARCH_FIELDS:
            if getattr(cfg, field_name) != getattr(registered, field_name):
                raise MemoError(
                    f"{path}: checkpoint says '{cfg.name}' but its {field_name} "
                    f"({getattr(cfg, field_name)}) differs from that architecture's "
                    f"({getattr(registered, field_name)})"
                )
    return cfg


def load_checkpoint(
    path: str | os.PathLike, expect_arch: str | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Rebuild the V-Net a checkpoint describes and load its weights (strictly).

    Args:
        path: the checkpoint file.
        expect_arch: if given, refuse a checkpoint of any other architecture.
        device: where to put the model.
    """
    payload = read_checkpoint(path)
    cfg = config_from_checkpoint(payload, path)
    if expect_arch is not None and cfg.name != expect_arch:
        raise MemoError(f"{path}: checkpoint is a '{cfg.name}' model, not '{expect_arch}'")
    state = upgrade_state_dict(_clean_state_dict(payload["state_dict"]))
    checks.check_weights(state, cfg, path)
    model = VNet(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        reason = " ".join(line.strip() for line in first[:3])
        raise MemoError(f"{path}: weights do not match a '{cfg.name}' model: {reason}") from None
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    checkpoint_id = f"{cfg.name}-{hash_file(path)[:16]}"
    return LoadedModel(model=model, meta=meta, checkpoint_id=checkpoint_id)

