"""What a checkpoint must be before memo builds a model from it.

A checkpoint file is untrusted input. :func:`check_file` runs before ``torch.load``,
:func:`check_payload` on what it returns, :func:`check_weights` before any model is
allocated. Every refusal is one line, ``checkpoint PATH: reason``.

Bounds (:data:`CONFIG_RULES`): every :class:`~memocli.registry.ModelConfig` field has one,
so a crafted config cannot ask for a 100,000-pixel input, a zero ``std`` or a backbone that
does not exist. Weights must be exactly the tensors the declared model has (same names,
shapes and kind), finite, and nothing else may be a tensor.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Callable
from typing import Any

import torch

from .errors import MemoError
from .registry import MAX_INPUT_BLUR, MODELS, ModelConfig

#: The pickled part of a checkpoint (names, config, metadata; not the tensor data). A
#: ResNet-152 V-Net's is about 100 KB.
MAX_PICKLE_BYTES = 16 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BACKBONES = frozenset(cfg.backbone for cfg in MODELS.values())


def refuse(path: str | os.PathLike, reason: str) -> MemoError:
    """The one-line error for a checkpoint that cannot be used."""
    return MemoError(f"checkpoint {path}: {reason}")


# --- config bounds --------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if not _is_int(value) or not lo <= value <= hi:
            return f"must be a whole number from {lo} to {hi}"
        return None

    return rule


def _is_number_in(value: Any, lo: float, hi: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and lo <= value <= hi)


def _float_in(lo: float, hi: float) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if not _is_number_in(value, lo, hi):
            return f"must be a number from {lo:g} to {hi:g}"
        return None

    return rule


def _floats_in(n: int, lo: float, hi: float) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if (not isinstance(value, (list, tuple)) or len(value) != n
                or not all(_is_number_in(v, lo, hi) for v in value)):
            return f"must be {n} numbers from {lo:g} to {hi:g}"
        return None

    return rule


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _name(value: Any) -> str | None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        return "must be a name of letters, digits, '_', '.' or '-' (at most 64)"
    return None


def _backbone(value: Any) -> str | None:
    if value not in BACKBONES:
        return f"must be one of {', '.join(sorted(BACKBONES))}"
    return None


def _stage_blocks(value: Any) -> str | None:
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(_is_int(v) and 1 <= v <= 64 for v in value)):
        return "must be 4 whole numbers from 1 to 64"
    return None


def _heads(value: Any) -> str | None:
    if (not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 16
            or any(_name(v) for v in value) or len(set(value)) != len(value)):
        return "must be 1 to 16 different names"
    return None


#: One rule per config field: None when the value is fine, else what it must be.
CONFIG_RULES: dict[str, Callable[[Any], str | None]] = {
    "name": _name,
    "backbone": _backbone,
    "input_size": _int_in(32, 1024),
    "mean": _floats_in(3, 0.0, 1.0),
    "std": _floats_in(3, 0.01, 10.0),
    "proj_channels": _int_in(1, 4096),
    "lstm_hidden": _int_in(1, 4096),
    "stage_blocks": _stage_blocks,
    "heads": _heads,
    "mixer_domains": _int_in(1, 64),
    "input_blur": _float_in(0.0, MAX_INPUT_BLUR),
    "blur_strides": _flag,
}


def check_config(cfg: Any, path: str | os.PathLike) -> None:
    """Refuse a config with unknown or missing fields, or a value out of bounds."""
    if not isinstance(cfg, dict):
        raise refuse(path, "has no model config")
    known = set(ModelConfig.__dataclass_fields__)
    unknown = sorted(str(k) for k in cfg if k not in known or k not in CONFIG_RULES)
    if unknown:
        raise refuse(path, f"unknown model config field(s): {', '.join(unknown)}")
    for field_name in ("name", "backbone"):
        if field_name not in cfg:
            raise refuse(path, f"model config has no {field_name}")
    for field_name, value in cfg.items():
        problem = CONFIG_RULES[field_name](value)
        if problem:
            raise refuse(path, f"model config {field_name} {_short(value)} {problem}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- the file and the payload -----------------------------------------------------------------

def check_file(path: str | os.PathLike) -> None:
    """Before ``torch.load``: torch's zip format, with a pickled part of sane size."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [i for i in archive.infolist() if i.filename.endswith("data.pkl")]
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load says what is wrong with it
    if len(pickles) != 1:
        raise refuse(path, "not a memo checkpoint (no single data.pkl)")
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise refuse(path, f"metadata of {pickles[0].file_size / 1e6:.0f} MB is too large "
                           f"(at most {MAX_PICKLE_BYTES >> 20} MB)")


def check_payload(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """The loaded dict: its config in bounds, tensors only under ``state_dict``."""
    version = payload.get("format_version")
    if not _is_int(version) or version < 1:
        raise refuse(path, f"format_version {_short(version)} is not a version number")
    check_config(payload.get("cfg"), path)
    if not isinstance(payload.get("state_dict"), dict):
        raise refuse(path, "has no weights (state_dict is not a dict of tensors)")
    for key, value in payload.items():
        if key != "state_dict" and _holds_tensor(value):
            raise refuse(path, f"holds tensor data outside its weights (under {key!r})")


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    return False


# --- the weights ------------------------------------------------------------------------------

def expected_weights(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The state dict a model of ``cfg`` has, as shapes only (built on the meta device:
    nothing is allocated)."""
    from .model import VNet

    with torch.device("meta"):
        return VNet(cfg).state_dict()


def check_weights(state: dict[Any, Any], cfg: ModelConfig, path: str | os.PathLike) -> None:
    """Refuse weights that are not exactly ``cfg``'s model's, or not finite.

    Runs before the model is allocated: extra tensors (however large), missing ones, other
    shapes or kinds, and NaN or infinite values are all refused.
    """
    expected = expected_weights(cfg)
    mismatch = f"weights do not match a '{cfg.name}' model"
    unknown = sorted(str(k) for k in state if k not in expected)
    if unknown:
        raise refuse(path, f"{mismatch}: unexpected {_listed(unknown)}")
    missing = sorted(k for k in expected if k not in state)
    if missing:
        raise refuse(path, f"{mismatch}: missing {_listed(missing)}")
    for key, want in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor):
            raise refuse(path, f"{mismatch}: {key} is a {type(got).__name__}, not a tensor")
        if got.shape != want.shape:
            raise refuse(path, f"{mismatch}: {key} has shape {list(got.shape)}, "
                               f"expected {list(want.shape)}")
        if got.is_floating_point() != want.is_floating_point() or got.is_complex():
            raise refuse(path, f"{mismatch}: {key} holds {got.dtype}, expected {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise refuse(path, f"weight {key} is not finite (NaN or infinity); the "
                               "checkpoint is broken")


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
