#!/usr/bin/env python
"""The compute roofline of this machine's CPU for score_speed.py: work per photo and the
best matrix-multiply rate its cores reach.

* **GFLOP per photo**, counted by ``torch.utils.flop_counter`` (one multiply-add is two
  FLOP): memo's V-Net at its input size, and ResMem at its 227x227 when it is installed.
* **Peak**: the best of a few large matrix products (float32, and bfloat16 where the CPU
  has it in hardware) in torch and in OpenVINO, on all cores. A measured peak, not a data
  sheet's: it is what the same kernels reach when nothing but arithmetic limits them.

Run alone it prints them::

    python benchmarks/roofline.py
"""

from __future__ import annotations

import time
import warnings

import torch
from torch.utils.flop_counter import FlopCounterMode

GEMM_SIDE = 4096


def gflop_per_photo(model: torch.nn.Module, size: int) -> float:
    """GFLOP of one forward pass of ``model`` on a ``size`` x ``size`` photo."""
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def memo_gflop() -> float:
    """GFLOP per photo of memo's default model."""
    from memocli.checkpoint import load_checkpoint
    from memocli.files import default_weights_path

    model = load_checkpoint(default_weights_path(), device="cpu").model.eval()
    return gflop_per_photo(model, model.cfg.input_size)


def resmem_gflop() -> float | None:
    """GFLOP per photo of ResMem (None when it is not installed)."""
    try:
        from resmem import ResMem
    except ImportError:
        return None
    with warnings.catch_warnings():  # ResMem passes torchvision its deprecated `pretrained`
        warnings.simplefilter("ignore", UserWarning)
        model = ResMem(pretrained=True).eval()
    return gflop_per_photo(model, 227)


def _best_rate(run, flop: float, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` calls of ``run`` (after a warm-up call)."""
    run()
    best = min(_seconds(run) for _ in range(repeats))
    return flop / best / 1e9


def _seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def torch_gemm_peak(dtype: torch.dtype) -> float:
    """GFLOP/s of torch's matrix product of two GEMM_SIDE-square matrices."""
    a = torch.randn(GEMM_SIDE, GEMM_SIDE).to(dtype)
    b = torch.randn(GEMM_SIDE, GEMM_SIDE).to(dtype)
    return _best_rate(lambda: a @ b, 2 * GEMM_SIDE**3)


def openvino_gemm_peak(precision: str) -> float | None:
    """GFLOP/s of OpenVINO's matrix product (``f32`` or ``bf16`` inference precision)."""
    from memocli.engines import import_openvino, openvino_core, openvino_installed

    if not openvino_installed():
        return None
    ov = import_openvino()
    import numpy as np
    from openvino import opset13 as ops

    x = ops.parameter([GEMM_SIDE, GEMM_SIDE], np.float32)
    w = ops.constant(np.random.default_rng(0).standard_normal((GEMM_SIDE, GEMM_SIDE),
                                                              dtype=np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x])
    request = openvino_core().compile_model(model, "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": torch.get_num_threads()}).create_infer_request()
    data = np.ones((GEMM_SIDE, GEMM_SIDE), np.float32)
    return _best_rate(lambda: request.infer({0: data}), 2 * GEMM_SIDE**3)


def gemm_peaks() -> dict[str, float]:
    """The best measured GFLOP/s per precision: ``fp32``, and ``bf16`` on CPUs that have it."""
    from memocli.device import native_bf16_cpu

    peaks = {"fp32": max(torch_gemm_peak(torch.float32), openvino_gemm_peak("f32") or 0)}
    if native_bf16_cpu():
        peaks["bf16"] = max(torch_gemm_peak(torch.bfloat16), openvino_gemm_peak("bf16") or 0)
    return peaks


def main() -> None:
    from memocli.machine import describe_cpu

    print(f"CPU: {describe_cpu()}; {torch.get_num_threads()} threads")
    print(f"memo V-Net: {memo_gflop():.2f} GFLOP/photo")
    resmem = resmem_gflop()
    if resmem is not None:
        print(f"ResMem: {resmem:.2f} GFLOP/photo")
    for precision, peak in gemm_peaks().items():
        print(f"peak {precision}: {peak:.0f} GFLOP/s (best measured matrix product)")


if __name__ == "__main__":
    main()
