"""What decides ``--device``, ``--precision`` and ``--engine`` on this machine, read
without importing torch: the cache's key for the model id a checkpoint scores under.

A request such as ``auto`` resolves differently on different machines (a bfloat16 CPU,
an older one, a GPU), and so does the model id. One cache may serve several machines (a
network home, merged shards, ``CUDA_VISIBLE_DEVICES`` toggled), so each request is
remembered together with the facts its resolution depends on (:func:`setup_keys`), each
read cheaply: a fully cached re-scan still imports no torch.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
from pathlib import Path

#: Variables that hide GPUs from CUDA (and ROCm, which torch also calls ``cuda``).
_GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


def installed_release(package: str) -> str | None:
    """``'2026.4.1'``: the installed release of ``package`` from its ``.dist-info`` folder
    name, without importing it or :mod:`importlib.metadata` (0.17 s); ``'?'`` when
    installed without one; None when not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    site = Path(spec.origin).parent.parent
    for info in site.glob(f"{package}-*.dist-info"):
        return info.name.removeprefix(f"{package}-").removesuffix(".dist-info")
    return "?"


def gpu_facts() -> str:
    """What decides whether ``--device auto`` finds a GPU: ``'no gpu'``, or the GPU device
    nodes, the variables that hide them and torch's release (its CUDA build)."""
    if sys.platform == "darwin":  # Apple MPS
        facts = [f"macOS {platform.mac_ver()[0]} {platform.machine()}"]
    elif sys.platform == "win32":
        system = Path(os.environ.get("SystemRoot", r"C:\Windows"), "System32")
        facts = ["nvcuda"] if (system / "nvcuda.dll").exists() else []
    else:
        try:
            nodes = os.listdir("/dev")
        except OSError:
            nodes = []
        facts = sorted(n for n in nodes if re.fullmatch(r"nvidia\d+|kfd|dxg", n))
    if not facts:
        return "no gpu"
    facts += [f"{name}={os.environ[name]}" for name in _GPU_VARIABLES if name in os.environ]
    return " ".join([*facts, f"torch {installed_release('torch')}"])


def setup_keys(device: str, precision: str, engine: str) -> tuple[str, str, str]:
    """``(device, precision, engine)`` as asked, each ``auto`` (and ``openvino``) with
    what it resolves by here: ``('auto (no gpu)', 'auto (cpu bf16)',
    'auto (openvino 2026.4.1)')``."""
    from .device import native_bf16_cpu
    from .engines import openvino_installed

    if device == "auto":
        device = f"auto ({gpu_facts()})"
    if precision == "auto":
        precision = f"auto (cpu {'bf16' if native_bf16_cpu() else 'without bf16'})"
    if engine != "torch":
        release = installed_release("openvino") if openvino_installed() else None
        engine = f"{engine} ({'openvino ' + release if release else 'no openvino'})"
    return device, precision, engine
