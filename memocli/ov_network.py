"""A whole V-Net compiled by OpenVINO for the CPU, run without torch.

The converted network (:func:`memocli.engines.convert_vnet`) holds everything from the
network input to the score: the backbone, every head and the mixer. Its outputs are named
(:data:`SCORE`, ``stage1`` ... ``stage3`` for the output of the first stages,
``pooled.0`` ... ``pooled.N``) so that it can be cut where memo's precision policy
(:class:`memocli.precision.Precision`) changes dtype: in float32 it is compiled whole; in
bfloat16 as one part per segment and one for the heads (OpenVINO's CPU plugin has no
per-layer precision that holds in bfloat16)::

    stem + stage 1 (float32) -> stages 2-4 (bfloat16) -> heads + mixer (float32)

the split :meth:`memocli.predictor.Predictor.forward` computes in torch, so the scores are
those of the two-network conversion before it (``docs/performance.md``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .registry import STAGES

if TYPE_CHECKING:
    from .precision import Precision

log = logging.getLogger(__name__)

SCORE = "score"
INPUT = "x"

#: OpenVINO's name of each compute dtype it runs.
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def pooled_name(index: int) -> str:
    """The output name of block ``index``'s pooled vector."""
    return f"pooled.{index}"


def stage_name(stages: int) -> str:
    """The output name of the network after its first ``stages`` stages."""
    return f"stage{stages}"


def name_outputs(network: Any, blocks: int) -> None:
    """Give a freshly converted network's outputs the names above (in
    :class:`memocli.model.WholeVNet`'s order) and its input :data:`INPUT`."""
    names = [SCORE, *(stage_name(s) for s in range(1, len(STAGES))),
             *(pooled_name(i) for i in range(blocks))]
    for output, name in zip(network.outputs, names, strict=True):
        output.get_tensor().set_names({name})
    network.inputs[0].get_tensor().set_names({INPUT})


def _cut(network: Any, inputs: list[str], outputs: list[str]) -> Any:
    """The part of ``network`` that computes ``outputs`` from the network input and
    ``inputs`` (names of outputs, each made a new parameter)."""
    from .openvino_runtime import import_openvino

    ov = import_openvino()
    part = network.clone()
    # the network input stays a parameter of every part: the traced heads read the batch
    # size from its shape
    parameters = [part.input(INPUT).get_node()]
    for name in inputs:
        source = part.output(name).get_node().input_value(0)
        parameter = ov.opset13.parameter(source.get_partial_shape(),
                                          source.get_element_type(), name=name)
        parameter.output(0).get_tensor().set_names({name})
        for target in list(source.get_target_inputs()):
            if target.get_node().get_type_name() != "Result":
                target.replace_source_output(parameter.output(0))
        _unhook_pooling(source, parameter, ov)
        parameters.append(parameter)
    results = [part.output(name).get_node() for name in outputs]
    return ov.Model(results, parameters, "+".join(outputs[:1]))


def _unhook_pooling(flat: Any, parameter: Any, ov: Any) -> None:
    """Where ``flat`` flattens a pooled ``[B, C, 1, 1]`` tensor, point that tensor's other
    readers (the traced heads take the batch size from its shape) at ``parameter``
    unflattened: else they keep the whole backbone in a part that starts after it."""
    feeder = flat.get_node()
    if feeder.get_type_name() != "Reshape":
        return
    pooled = feeder.input_value(0)
    if pooled.get_partial_shape().rank.get_length() != 4:
        return
    others = [t for t in pooled.get_target_inputs()
              if t.get_node().get_name() != feeder.get_name()]
    if others:
        unflat = ov.opset13.unsqueeze(parameter, ov.opset13.constant([2, 3]))
        for target in others:
            target.replace_source_output(unflat.output(0))


def parts(network: Any, precision: Precision, stage_blocks: tuple[int, ...]
          ) -> list[tuple[Any, str]]:
    """``[(model, dtype), ...]`` to compile, in order, for ``precision``: the whole
    network when it computes in one dtype, else one part per segment and one for the
    heads."""
    starts = [sum(stage_blocks[:s]) for s in range(len(stage_blocks) + 1)]
    pooled = [pooled_name(i) for i in range(starts[-1])]
    segments = precision.segments()
    if len(segments) == 1 and segments[0].dtype == precision.heads_dtype:
        return [(_cut(network, [], [SCORE, pooled[-1]]), precision.heads_dtype)]
    out = []
    for segment in segments:
        inputs = [stage_name(segment.first)] if segment.first else []
        after = [stage_name(segment.last)] if segment.last < len(stage_blocks) else []
        outputs = after + pooled[starts[segment.first]:starts[segment.last]]
        out.append((_cut(network, inputs, outputs), segment.dtype))
    out.append((_cut(network, pooled, [SCORE]), precision.heads_dtype))
    return out


class CompiledVNet:
    """A converted V-Net compiled for this CPU with ``precision``'s policy.

    Call it on network inputs ``[B, 3, H, W]`` (float32 numpy) for the scores ``[B]`` and
    the last block's pooled features ``[B, C]`` (float32 numpy arrays of its own).

    Args:
        network: the converted ``openvino.Model`` (named as :func:`name_outputs` says).
        precision: what each part computes in (compute dtype ``fp32`` or ``bf16``).
        stage_blocks: residual blocks per stage (the model config's).
        compiled_cache: a folder for OpenVINO's cache of compiled models (None: none),
            which makes the next compile of the same network several times faster.
    """

    def __init__(self, network: Any, precision: Precision, stage_blocks: tuple[int, ...],
                 compiled_cache: Path | None = None):
        from .openvino_runtime import openvino_core

        threads = default_threads()
        self.last = pooled_name(sum(stage_blocks) - 1)
        self.requests = []
        for part, dtype in parts(network, precision, tuple(stage_blocks)):
            # Latency mode, one request on all threads: throughput mode (each batch split
            # among streams) was no faster in alternating runs (docs/performance.md).
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": OV_PRECISION[dtype]}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            if compiled_cache is not None:
                config["CACHE_DIR"] = str(compiled_cache)
            self.requests.append(openvino_core().compile_model(part, "CPU", config)
                                 .create_infer_request())

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[B]`` and the last block's pooled features ``[B, C]`` of ``x``."""
        known: dict[str, np.ndarray] = {INPUT: np.ascontiguousarray(x, dtype=np.float32)}
        for request in self.requests:
            feed = {i.get_any_name(): known[i.get_any_name()]
                    for i in request.model_inputs}
            outputs = request.infer(feed)
            for port in request.model_outputs:
                known[port.get_any_name()] = outputs[port]
        return known[SCORE].reshape(-1).copy(), known[self.last].copy()


def default_threads() -> int | None:
    """Inference threads: ``$OMP_NUM_THREADS`` when it is set, as torch would use (None:
    OpenVINO's own choice, one per core)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
