"""memo's precision policy: which parts of a V-Net compute in float32 and which in the
compute dtype. Scoring in torch, the OpenVINO conversion and training all ask a
:class:`Precision` instead of deciding for themselves.

* Scoring (:meth:`Precision.scoring`): the stem and stage 1, whose rounding errors every
  later block would carry, and the LSTM heads in float32; stages 2-4 in the compute dtype.
  This keeps scores within 0.005 of all-float32 on LNSIM's test photos (every stage in
  bfloat16: 0.018) at most of the speed (``docs/performance.md``).
* Training (:meth:`Precision.training`): the whole network under bfloat16 autocast on CUDA
  and on CPUs with native bfloat16 (AMX, AVX512-BF16: about 2.6x float32's speed for
  ResNet-50's last two stages), float32 elsewhere or when asked (``memo train --precision``).
  Training on cached activations computes the frozen stages, the trainable stages and the
  heads the same way.

Importing this module does not import torch: the dtype names are plain strings, and torch
is imported by the methods that compute.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import MemoError

if TYPE_CHECKING:
    import torch

    from .model import VNet

#: The compute dtypes by the names model ids, messages and ``--precision`` use.
DTYPES = ("fp32", "bf16", "fp16")

#: ``--precision`` choices; see :func:`compute_dtype`.
PRECISIONS = ("auto", *DTYPES)


def compute_dtype(requested: str, device_type: str) -> str:
    """The compute dtype's name for scoring on a ``device_type`` device (``cpu``, ``cuda``,
    ``mps``).

    ``auto`` is float16 on CUDA, bfloat16 on a CPU with native bfloat16
    (:func:`memocli.device.native_bf16_cpu`), float32 elsewhere (Apple MPS, older CPUs,
    where reduced precision is slower or untested).
    """
    from . import device  # looked up on use: tests model other machines by patching it

    if requested not in PRECISIONS:
        raise MemoError(f"unknown precision '{requested}' (use {', '.join(PRECISIONS)})")
    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "fp16"
    if device_type == "cpu" and device.native_bf16_cpu():
        return "bf16"
    return "fp32"


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a :data:`DTYPES` name."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


@dataclass(frozen=True)
class Segment:
    """ResNet stages ``first``..``last - 1`` (with the stem when ``first`` is 0), computed
    in ``dtype``."""

    first: int
    last: int
    dtype: str


@dataclass(frozen=True)
class Precision:
    """Which parts of a V-Net compute in ``dtype`` (a :data:`DTYPES` name).

    Stages from ``reduced_from`` on compute in ``dtype`` (0: the stem too); the stem and
    the stages before it in float32. The heads compute in ``dtype`` when ``reduced_heads``,
    else in float32. In float32 everything is float32.
    """

    dtype: str = "fp32"
    reduced_from: int = 1
    reduced_heads: bool = False

    @classmethod
    def scoring(cls, dtype: str) -> Precision:
        """Scoring's policy in ``dtype``: stem, stage 1 and heads float32."""
        return cls(dtype, reduced_from=1, reduced_heads=False)

    @classmethod
    def training(cls, device_type: str, requested: str = "auto") -> Precision:
        """Training's policy: the whole network in one dtype, ``requested`` (``fp32`` or
        ``bf16``) or, for ``auto``, bfloat16 on CUDA and on CPUs with native bfloat16 and
        float32 elsewhere."""
        from . import device  # looked up on use: tests model other machines by patching it

        if requested == "auto":
            native = device_type == "cuda" or (device_type == "cpu" and device.native_bf16_cpu())
            requested = "bf16" if native else "fp32"
        if requested not in ("fp32", "bf16"):
            raise MemoError(f"training runs in fp32 or bf16, not '{requested}'")
        return cls(requested, reduced_from=0, reduced_heads=True)

    def stage_dtype(self, stage: int) -> str:
        """What stage ``stage`` (0-based; the stem belongs to stage 0) computes in."""
        return self.dtype if stage >= self.reduced_from else "fp32"

    @property
    def heads_dtype(self) -> str:
        """What the heads compute in."""
        return self.dtype if self.reduced_heads else "fp32"

    def segments(self, first: int = 0, last: int | None = None) -> list[Segment]:
        """Stages ``first``..``last - 1`` (default: to the end) as runs of one dtype each,
        in order: what an engine compiles as one network per segment."""
        from .registry import STAGES  # not .model: the torch-free scorer asks too

        last = len(STAGES) if last is None else last
        if first == last == 0:
            return [Segment(0, 0, self.stage_dtype(0))]  # the stem alone
        out: list[Segment] = []
        for stage in range(first, last):
            dtype = self.stage_dtype(stage)
            if out and out[-1].dtype == dtype:
                out[-1] = Segment(out[-1].first, stage + 1, dtype)
            else:
                out.append(Segment(stage, stage + 1, dtype))
        return out

    def autocast(self, device_type: str, dtype: str | None = None
                 ) -> contextlib.AbstractContextManager:
        """Autocast to ``dtype`` (default: the compute dtype) on ``device_type``; a no-op
        in float32."""
        dtype = dtype or self.dtype
        if dtype == "fp32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type, dtype=torch_dtype(dtype))

    def run_backbone(self, model: VNet, x: torch.Tensor, device_type: str, first: int = 0,
                     last: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Stages ``first``..``last - 1`` of ``model`` on ``x`` (the stem first when
        ``first`` is 0), each segment in its dtype.

        Returns the last block's output (in the last segment's dtype) and the pooled
        output of every block run, as float32 ``[B, C_i]`` tensors.
        """
        pooled: list[torch.Tensor] = []
        for segment in self.segments(first, last):
            with self.autocast(device_type, segment.dtype):
                if segment.first == 0:
                    x = model.stem(x)
                x, part = model.run_stages(x, segment.first, segment.last)
            pooled += [p.float() for p in part]
        return x, pooled

    def run_heads(self, model: VNet, pooled: list[torch.Tensor], device_type: str
                  ) -> torch.Tensor:
        """The primary score ``[B]`` (float32) from the pooled block features."""
        with self.autocast(device_type, self.heads_dtype):
            return model.head(pooled).float()
