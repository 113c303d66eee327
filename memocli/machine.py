"""What this computer's CPU can do: the features that decide memo's fastest path."""

from __future__ import annotations


def _capabilities() -> dict:
    """What torch reads of this CPU (``{}`` on torch versions that cannot say)."""
    import torch

    return torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}


def cpu_features() -> dict[str, bool]:
    """``avx2``, ``avx512``, ``vnni`` (int8 dot products), ``bf16`` (bfloat16 arithmetic in
    hardware: AVX512-BF16 or AMX) and ``amx`` (Intel's matrix tiles), as torch reads them."""
    caps = _capabilities()
    return {
        "avx2": bool(caps.get("avx2")),
        "avx512": bool(caps.get("avx512_f")),
        "vnni": bool(caps.get("avx512_vnni") or caps.get("avx_vnni")),
        "bf16": bool(caps.get("avx512_bf16") or caps.get("amx_bf16")),
        "amx": bool(caps.get("amx_tile")),
    }


def describe_cpu() -> str:
    """One line: ``'AMD EPYC, 2 cores: avx2 avx512 vnni bf16; no amx'``."""
    import torch

    caps = _capabilities()
    features = cpu_features()
    have = " ".join(name for name, ok in features.items() if ok) or "none of avx2 avx512"
    lacks = " ".join(name for name, ok in features.items() if not ok)
    name = caps.get("cpu_name") or "CPU"
    cores = caps.get("num_physical_cores") or torch.get_num_threads()
    return f"{name}, {cores} cores: {have}" + (f"; no {lacks}" if lacks else "")
