"""What this computer's CPU can do: the features that decide memo's fastest path.

They are x86 features. On Linux they are read from ``/proc/cpuinfo``, and an ARM CPU
(Apple silicon) has none of them, without importing torch, so that deciding what
``--precision auto`` is costs nothing on a fully cached re-scan; on other x86 systems
(Windows, Intel Macs) torch reads them.
"""

from __future__ import annotations

import functools
import platform

#: Each feature memo asks about, and the CPU flags (as ``/proc/cpuinfo`` and torch name
#: them) that give it.
_FEATURES = {
    "avx2": ("avx2",),
    "avx512": ("avx512f", "avx512_f"),
    "vnni": ("avx512_vnni", "avx_vnni"),  # int8 dot products
    "bf16": ("avx512_bf16", "amx_bf16"),  # bfloat16 arithmetic in hardware
    "amx": ("amx_tile",),  # Intel's matrix tiles
}


def _proc_cpuinfo_flags() -> set[str] | None:
    """The first CPU's flags in ``/proc/cpuinfo`` (None where there is no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):  # x86, ARM
                    return set(value.split())
    except OSError:
        return None
    return set()


def _capabilities() -> dict:
    """What torch reads of this CPU (``{}`` on torch versions that cannot say)."""
    import torch

    return torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}


@functools.cache
def cpu_features() -> dict[str, bool]:
    """``avx2``, ``avx512``, ``vnni``, ``bf16`` and ``amx``: whether this CPU has each (see
    :data:`_FEATURES`)."""
    flags = _proc_cpuinfo_flags()
    if flags is None and platform.machine().lower() in ("arm64", "aarch64"):
        flags = set()
    if flags is None:
        flags = {name for name, present in _capabilities().items() if present is True}
    return {feature: any(f in flags for f in names) for feature, names in _FEATURES.items()}


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
