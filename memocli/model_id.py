"""The model id: the name scores are cached under, built here and nowhere else.

::

    vnet_r50-28e4da1c5e57fc0a-p2-bf16-ov2026.4.1
    vnet_r50-28e4da1c5e57fc0a-p2-fp16-cuda
    <checkpoint id>-p<PREPROCESSING_VERSION>-<variant>

The part before the variant, the *family* (:func:`family`), is what a score means: the
weights and the preprocessing. Anything else that changes what is computed belongs there,
before the variant. The *variant* (:class:`Variant`) is how the score was computed: the
compute dtype, the device class unless it is the CPU (``cuda``: float32 convolutions are
TF32 there; ``mps``), and the engine with its release unless it is torch
(``ov2026.4.1``).

Scores of two variants of one family agree within 0.01 (memo's precision budget, checked by
``tests/test_fast_paths.py``), so a score of another variant can serve a lookup that asks
for any (:func:`is_variant`; ``docs/scoring.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .registry import PREPROCESSING_VERSION

#: A variant as it ends a model id (``-ov`` alone: ids written before the release was named).
_VARIANT = r"(?:fp32|bf16|fp16)(?:-cuda|-mps)?(?:-ov[\w.]*)?"


@dataclass(frozen=True)
class Variant:
    """How a score is computed: compute dtype, device class (``cpu``, ``cuda``, ``mps``),
    engine (``torch``, ``openvino``) and, for OpenVINO, its release."""

    dtype: str
    device: str = "cpu"
    engine: str = "torch"
    engine_release: str = ""

    def __str__(self) -> str:
        parts = [self.dtype]
        if self.device != "cpu":
            parts.append(self.device)
        if self.engine == "openvino":
            parts.append(f"ov{self.engine_release}")
        return "-".join(parts)


def family(checkpoint_id: str) -> str:
    """What a score means: the checkpoint and the preprocessing version."""
    return f"{checkpoint_id}-p{PREPROCESSING_VERSION}"


def model_id(checkpoint_id: str, variant: Variant) -> str:
    """The id scores of ``checkpoint_id`` computed as ``variant`` are cached under."""
    return f"{family(checkpoint_id)}-{variant}"


def family_of(model: str) -> str | None:
    """The family of a model id (None for an id without a variant, from an old memo)."""
    match = re.fullmatch(rf"(.+)-{_VARIANT}", model)
    return match[1] if match else None


def is_variant(model: str, of: str) -> bool:
    """Whether ``model`` is ``of`` or another variant of its family."""
    if model == of:
        return True
    wanted = family_of(of)
    return wanted is not None and family_of(model) == wanted
