"""Pick the compute device (CUDA, else Apple MPS, else CPU); whether the CPU has bfloat16."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import MemoError

if TYPE_CHECKING:  # torch is imported by the functions: the CLI reads DEVICE_NAMES without it
    import torch

#: The device names memo accepts (``--device``), checked without importing torch.
DEVICE_NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def pick_device(requested: str | None = None) -> torch.device:
    """The device to run on; ``requested`` (``cuda``, ``cuda:1``, ``mps``, ``cpu``) wins."""
    import torch

    if requested and requested != "auto":
        if not DEVICE_NAMES.fullmatch(requested):
            raise MemoError(f"unknown device '{requested}' (use auto, cpu, cuda, cuda:N or mps)")
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise MemoError("--device cuda: no CUDA GPU is available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise MemoError("--device mps: Apple MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def native_bf16_cpu() -> bool:
    """True when this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX)."""
    from .machine import cpu_features

    return cpu_features()["bf16"]
