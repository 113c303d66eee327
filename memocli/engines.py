"""The inference engine that runs the backbone: torch, or OpenVINO on a CPU.

On a CPU, OpenVINO runs the ResNet backbone about 1.4x faster than torch in float32 (batch
norm folded into the convolutions, fused kernels) and, with bfloat16 hardware, about 1.3x
faster than torch's bfloat16, with scores closer to float32 (``docs/performance.md``). It
computes what :meth:`memocli.predictor.Predictor.forward` computes in torch: the pooled
output of every residual block, each part in the dtype the precision policy
(:class:`memocli.precision.Precision`) gives it. The LSTM heads stay in torch (float32;
well under 1% of the time).

The converted network is kept as OpenVINO IR under :func:`engine_cache_dir`, named by the
checkpoint digest, the stages and the OpenVINO version, so the two-second conversion is
paid once per model and machine, not per run.

OpenVINO sends anonymous usage data to Google Analytics by default, from ``import openvino``
on, and writes a client id under ``~/intel``. memo sends nothing anywhere: it imports
OpenVINO through :func:`import_openvino`, which hides the telemetry package so that OpenVINO
falls back to its own no-op stub.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import sys
import warnings
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MemoError

if TYPE_CHECKING:
    import torch

    from .model import VNet
    from .precision import Precision

log = logging.getLogger(__name__)

#: ``--engine`` choices; see :func:`pick_engine`.
ENGINES = ("auto", "torch", "openvino")

#: OpenVINO's name of each compute dtype it runs.
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def import_openvino():
    """The ``openvino`` module, imported with its usage telemetry off (see above)."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # import fails -> OpenVINO's stub
    import openvino

    return openvino


@functools.cache
def openvino_core():
    """The process's one OpenVINO ``Core``, shared by every converted network: OpenVINO
    expects one per application, and a Core per model has crashed processes that load many
    (openvinotoolkit/openvino#35338, ultralytics/ultralytics#25864)."""
    return import_openvino().Core()


def openvino_version() -> str:
    """``'2026.4.1'``: the installed OpenVINO's release, without its build tag."""
    return import_openvino().__version__.split("-")[0]


def openvino_installed() -> bool:
    """True when the ``openvino`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def pick_engine(requested: str, device: torch.device, dtype_name: str) -> str:
    """``torch`` or ``openvino`` for scoring on ``device`` in ``dtype_name``.

    ``auto`` is OpenVINO on a CPU, in float32 or bfloat16, when it is installed; torch
    otherwise (GPUs, float16). Asking for ``openvino`` where it cannot run is an error.
    """
    if requested not in ENGINES:
        raise MemoError(f"unknown engine '{requested}' (use {', '.join(ENGINES)})")
    if requested == "torch":
        return "torch"
    reason = None
    if device.type != "cpu":
        reason = f"it runs on the CPU only, not {device.type} (use --device cpu)"
    elif dtype_name not in ("fp32", "bf16"):
        reason = f"it runs fp32 or bf16, not {dtype_name}"
    elif not openvino_installed():
        reason = "it is not installed (pip install openvino)"
    if reason is None:
        return "openvino"
    if requested == "openvino":
        raise MemoError(f"--engine openvino: {reason}")
    return "torch"


def engine_cache_dir() -> Path:
    """Where converted networks are kept: ``engines/`` beside the default score cache."""
    from .folders import default_cache_path

    return default_cache_path().parent / "engines"


def converted_networks(folder: Path | None = None) -> dict:
    """What the folder of converted networks holds (default :func:`engine_cache_dir`):
    ``{"path", "networks", "size_bytes"}``, zeros when it does not exist."""
    folder = folder or engine_cache_dir()
    files = [f for f in folder.glob("*") if f.is_file()] if folder.is_dir() else []
    return {"path": str(folder), "networks": sum(f.suffix == ".xml" for f in files),
            "size_bytes": sum(f.stat().st_size for f in files)}


class OpenVINOBackbone:
    """A V-Net's backbone compiled by OpenVINO for the CPU.

    Call it on a network input ``[B, 3, H, W]`` for the pooled block features, as
    :meth:`memocli.model.VNet.pooled_block_features` returns them (float32 tensors).

    Args:
        model: the V-Net (float32 weights on the CPU).
        precision: what each part computes in (compute dtype ``fp32`` or ``bf16``); one
            compiled network per :meth:`~memocli.precision.Precision.segments` segment.
        checkpoint_id: names the converted files (it changes with the weights).
        cache_dir: where converted networks are kept (None: convert in memory every time).
    """

    def __init__(self, model: VNet, precision: Precision, checkpoint_id: str,
                 cache_dir: Path | None = None):
        ov = import_openvino()
        import torch

        from .model import STAGES, StageSlice

        threads = torch.get_num_threads()
        size = model.cfg.input_size
        self.requests = []
        example = torch.zeros(1, 3, size, size)
        version = re.sub(r"[^\w.]+", "_", ov.__version__)  # '2026.4.1-22982-…/2026/4'
        for first, last, dtype in (astuple(s) for s in precision.segments()):
            module = StageSlice(model, first, last).eval()
            name = f"{checkpoint_id}-stages{first}{last}-ov{version}"
            network = self._converted(module, example, name, cache_dir)
            # Latency mode, one request on all threads: throughput mode (each batch split
            # among streams) was no faster in alternating runs (docs/performance.md).
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                      "INFERENCE_PRECISION_HINT": _OV_PRECISION[dtype]}
            self.requests.append(openvino_core().compile_model(network, "CPU", config)
                                 .create_infer_request())
            if last < len(STAGES):
                with torch.no_grad():
                    example = module(example)[0]

    def _converted(self, module, example, name: str, cache_dir: Path | None):
        """The OpenVINO model of ``module``: read from ``cache_dir`` if there, else
        converted (about 2 s) and saved there for next time."""
        ov = import_openvino()

        path = cache_dir / f"{name}.xml" if cache_dir is not None else None
        if path is not None and path.exists():
            try:
                network = openvino_core().read_model(path)
                log.info("OpenVINO network read from %s", path)
                return network
            except RuntimeError as e:  # a damaged file: convert again and replace it
                log.info("cannot read converted network %s (%s); converting again", path, e)
        log.info("converting the network for OpenVINO (once per model and machine)")
        shape = [-1, *example.shape[1:]]
        with warnings.catch_warnings():  # torch.jit.trace's deprecation, not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            network = ov.convert_model(module, example_input=example, input=[shape])
        if path is not None:
            self._save(network, path)
        return network

    @staticmethod
    def _save(network, path: Path) -> None:
        """Save ``network`` as ``path`` (+ ``.bin``) atomically; a failure only costs the
        conversion next time."""
        ov = import_openvino()

        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.xml")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # float32 as converted: batch norm is folded into new constants on conversion,
            # which float16 would round (scores moved by up to 0.002)
            ov.save_model(network, tmp, compress_to_fp16=False)
            os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(tmp, path)
            log.info("converted network kept in %s", path)
        except (OSError, RuntimeError) as e:  # RuntimeError: OpenVINO could not write
            log.info("cannot keep the converted network in %s (%s)", path.parent, e)
            for leftover in (tmp, tmp.with_suffix(".bin")):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
            return
        _forget_other_versions(path)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pooled features of every residual block for the network input ``x``."""
        import torch

        pooled: list[torch.Tensor] = []
        data = x.contiguous().numpy()
        for i, request in enumerate(self.requests):
            outputs = request.infer({0: data})
            arrays = [outputs[k] for k in range(len(outputs))]
            if i < len(self.requests) - 1:
                data, arrays = arrays[0], arrays[1:]
            pooled += [torch.from_numpy(a.copy()) for a in arrays]
        return pooled


def _forget_other_versions(path: Path) -> None:
    """Delete the same network converted by other OpenVINO versions (never read again once
    OpenVINO is upgraded), keeping the folder from growing with every upgrade."""
    prefix = path.stem.rsplit("-ov", 1)[0]
    for old in path.parent.glob(f"{prefix}-ov*"):
        if old.stem != path.stem and ".tmp" not in old.name:
            with contextlib.suppress(OSError):
                old.unlink()
