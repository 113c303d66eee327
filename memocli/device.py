"""Pick the compute device: CUDA, else Apple MPS, else CPU."""

from __future__ import annotations

import torch

from .errors import MemoError


def pick_device(requested: str | None = None) -> torch.device:
    """The device to run on; ``requested`` (``cuda``, ``cuda:1``, ``mps``, ``cpu``) wins."""
    if requested and requested != "auto":
        try:
            device = torch.device(requested)
        except RuntimeError:
            raise MemoError(f"unknown device '{requested}' (use auto, cpu, cuda, cuda:N or mps)") from None
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
