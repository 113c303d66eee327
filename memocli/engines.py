"""The inference engine that runs the network: torch, or OpenVINO on a CPU.

On a CPU, OpenVINO runs the network about 1.4x faster than torch in float32 (batch norm
folded into the convolutions, fused kernels) and, with bfloat16 hardware, about 1.3x faster
than torch's bfloat16, with scores closer to float32 (``docs/performance.md``). The whole
model is converted, backbone, heads and mixer, and compiled with memo's precision policy
(:mod:`memocli.ov_network`), so a converted network scores photos without torch
(:mod:`memocli.ov_scorer`).

The converted network is kept as OpenVINO IR under :func:`engine_cache_dir`, named by the
checkpoint digest and the OpenVINO version and checked before every use
(:mod:`memocli.ov_store`), so the conversion is paid once per model and machine.

OpenVINO itself is imported, telemetry off, through :mod:`memocli.openvino_runtime` (whose
names this module re-exports)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from . import ov_store
from .errors import MemoError
from .openvino_runtime import (  # also re-exported: memo's one way to OpenVINO
    import_openvino,
    openvino_core,
    openvino_installed,
    openvino_version,
)

if TYPE_CHECKING:
    from .model import VNet
    from .ov_network import CompiledVNet
    from .precision import Precision

log = logging.getLogger(__name__)

#: ``--engine`` choices; see :func:`pick_engine`.
ENGINES = ("auto", "torch", "openvino")

def pick_engine(requested: str, device_type: str, dtype_name: str) -> str:
    """``torch`` or ``openvino`` for scoring on a ``device_type`` device (``cpu``, ``cuda``,
    ``mps``) in ``dtype_name``. Torch-free.

    ``auto`` is OpenVINO on a CPU, in float32 or bfloat16, when it is installed; torch
    otherwise (GPUs, float16). Asking for ``openvino`` where it cannot run is an error.
    """
    if requested not in ENGINES:
        raise MemoError(f"unknown engine '{requested}' (use {', '.join(ENGINES)})")
    if requested == "torch":
        return "torch"
    reason = None
    if device_type != "cpu":
        reason = f"it runs on the CPU only, not {device_type} (use --device cpu)"
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
    return ov_store.folder_facts(folder or engine_cache_dir())


def convert_vnet(model: VNet):
    """``model`` (float32, on the CPU) converted to an OpenVINO model, whole: the
    backbone, every head and the mixer, outputs named as :mod:`memocli.ov_network` says
    (about 2 s for a ResNet-50; needs torch)."""
    import torch

    from .model import WholeVNet
    from .ov_network import name_outputs

    ov = import_openvino()
    size = model.cfg.input_size
    example = torch.zeros(1, 3, size, size)
    log.info("converting the network for OpenVINO (once per model and machine)")
    with warnings.catch_warnings(), torch.no_grad():  # tracing's, not the user's concern
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        network = ov.convert_model(WholeVNet(model).eval(), example_input=example,
                                   input=[[-1, 3, size, size]])
    name_outputs(network, len(model.block_names))
    return network


def network_facts(model: VNet, checkpoint_id: str) -> dict:
    """What the manifest of a converted network says besides its files: enough to score
    with it without the checkpoint (:mod:`memocli.ov_scorer`)."""
    return {"checkpoint_id": checkpoint_id, "openvino": openvino_version(),
            "cfg": model.cfg.to_dict()}


def compiled_vnet(model: VNet, precision: Precision, checkpoint_id: str,
                  cache_dir: Path | None = None) -> CompiledVNet:
    """``model`` compiled by OpenVINO with ``precision``: its converted network read from
    ``cache_dir`` when it is there and intact, else converted and saved there for next
    time (``cache_dir`` None: converted in memory, nothing written)."""
    from .ov_network import CompiledVNet

    stem = ov_store.network_stem(checkpoint_id, openvino_version())
    network = read_network(cache_dir, stem) if cache_dir is not None else None
    from_store = network is not None
    if network is None:
        network = convert_vnet(model)
        facts = network_facts(model, checkpoint_id)
        if cache_dir is not None and ov_store.save(network, cache_dir, stem, facts):
            # compiled as read back, as every later run compiles it: OpenVINO's cache of
            # compiled models then knows it (a fresh conversion hashes differently)
            saved = read_network(cache_dir, stem)
            if saved is not None:
                network, from_store = saved, True
    return CompiledVNet(network, precision, model.cfg.stage_blocks,
                        compiled_cache(cache_dir) if from_store else None)


def compiled_cache(folder: Path) -> Path | None:
    """OpenVINO's own cache of compiled models, inside the folder of converted networks
    (its files are keyed by the network, the device and OpenVINO's version); None where
    it cannot be written (OpenVINO would fail the compile)."""
    path = folder / "compiled"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def read_network(folder: Path, stem: str):
    """The converted network ``stem`` from ``folder`` if it is there and intact, else None."""
    found = ov_store.checked_paths(folder, stem)
    if found is None:
        return None
    try:
        network = openvino_core().read_model(found[0])
    except RuntimeError as e:  # checked, yet unreadable (another version's format)
        log.warning("cannot read converted network %s (%s); converting again", found[0], e)
        return None
    ov_store.mark_used(folder, stem)
    log.info("OpenVINO network read from %s", found[0])
    return network
