#!/usr/bin/env python
"""The CPU inference routes tried for memo's network, measured on the same photos in one run.

Each route scores the same decoded LNSIM photos (network and head only: no decoding, no
cache), in batches of ``--batch-size``, after a warm-up batch. It prints photos/s, the
GFLOP/s that means (``roofline.py``'s count), and the largest score difference from torch
float32, the reference every fast path is held to (|difference| <= 0.01).

Routes (each skipped when its package is not installed):

* torch float32, channels-last (memo's ``--engine torch --precision fp32``);
* torch with stages 2-4 in bfloat16 (``--engine torch --precision bf16``; CPUs with bf16);
* ``torch.compile`` of the float32 network (``--compile``: compiling takes about 40 s the
  first time on 2 cores; inductor keeps a cache, so run twice to see a warm start);
* OpenVINO float32, and with stages 2-4 in bfloat16 (memo's ``--engine openvino``);
* OpenVINO int8: stages 2-4 quantised by NNCF (``pip install nncf``), calibrated on
  ``--calibration`` photos of the pool, never its held-out fifth (``sha1(name) % 5 == 0``);
* ONNX Runtime float32 and int8 (static QDQ quantisation of the backbone's convolutions,
  same calibration; ``pip install onnxruntime onnx``).

Usage:
    python benchmarks/engine_trials.py [--photos DIR] [--limit 320] [--batch-size 16]
                                       [--calibration 300] [--compile]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from memocli.device import native_bf16_cpu
from memocli.engines import import_openvino, openvino_core, openvino_installed
from memocli.files import default_weights_path
from memocli.model import STAGES, StageSlice
from memocli.predictor import Predictor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import roofline
from score_speed import DEFAULT_PHOTOS, machine

POOL = HERE.parents[1] / "shared" / "datasets" / "pool" / "images"

#: A route: a batch of network inputs -> scores (numpy, float32).
Route = Callable[[torch.Tensor], np.ndarray]


def load_inputs(predictor: Predictor, folder: Path, limit: int) -> torch.Tensor:
    """Network inputs of the first ``limit`` JPEGs of ``folder``, decoded as memo does."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    return torch.stack([predictor.net_input(predictor.load_photo(p)) for p in paths[:limit]])


def calibration_paths(count: int) -> list[Path]:
    """``count`` pool photos spread over its sources, none from the held-out fifth."""
    usable = [p for p in sorted(POOL.iterdir())
              if int(hashlib.sha1(p.name.encode()).hexdigest(), 16) % 5]
    return usable[::max(1, len(usable) // count)][:count]


def run_route(route: Route, inputs: torch.Tensor, batch: int) -> tuple[float, np.ndarray]:
    """photos/s of ``route`` over ``inputs`` (after a warm-up batch), and its scores."""
    route(inputs[:batch])
    started = time.perf_counter()
    scores = np.concatenate([route(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])
    return len(inputs) / (time.perf_counter() - started), scores


def predictor_route(predictor: Predictor) -> Route:
    return lambda x: predictor.predict(x)[0].numpy()


def compiled_route(predictor: Predictor) -> Route:
    """torch.compile of the float32 network; prints how long the first call took."""
    model = predictor.model
    compiled = torch.compile(model)
    started = time.perf_counter()
    with torch.inference_mode():
        compiled(torch.zeros(16, 3, model.cfg.input_size, model.cfg.input_size,
                             ).contiguous(memory_format=torch.channels_last))
    print(f"torch.compile: first call {time.perf_counter() - started:.0f} s", file=sys.stderr)

    def route(x):
        with torch.inference_mode():
            return compiled(x.contiguous(memory_format=torch.channels_last)).numpy()
    return route


def openvino_int8_route(predictor: Predictor, calibration: list[Path]) -> Route:
    """Stages 2-4 quantised to int8 by NNCF; stem, stage 1 and the heads as memo runs them."""
    import nncf

    ov = import_openvino()
    model = predictor.model
    size = model.cfg.input_size
    front, back = StageSlice(model, 0, 1).eval(), StageSlice(model, 1, len(STAGES)).eval()
    with torch.no_grad():
        features = [front(predictor.net_input(predictor.load_photo(p))[None])[0]
                    for p in calibration]
    front_net = ov.convert_model(front, example_input=torch.zeros(1, 3, size, size),
                                 input=[[-1, 3, size, size]])
    back_net = ov.convert_model(back, example_input=features[0],
                                input=[[-1, *features[0].shape[1:]]])
    back_net = nncf.quantize(back_net, nncf.Dataset([f.numpy() for f in features]),
                             subset_size=len(features), fast_bias_correction=True)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    front_run, back_run = (openvino_core().compile_model(net, "CPU", config).create_infer_request()
                           for net in (front_net, back_net))

    def route(x):
        out = front_run.infer({0: x.numpy()})
        arrays = [out[i] for i in range(len(out))]
        rest = back_run.infer({0: arrays[0]})
        arrays = arrays[1:] + [rest[i] for i in range(len(rest))]
        with torch.inference_mode():
            return model.head([torch.from_numpy(a.copy()) for a in arrays]).numpy()
    return route


def onnxruntime_routes(predictor: Predictor, calibration: list[Path], sample: torch.Tensor
                       ) -> dict[str, Route]:
    """ONNX Runtime float32 and int8 (static QDQ, the backbone's convolutions)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = predictor.model
    work = Path(tempfile.mkdtemp(prefix="memo-ort-"))
    fp32_path, pre_path, int8_path = work / "fp32.onnx", work / "pre.onnx", work / "int8.onnx"
    torch.onnx.export(model, (sample,), fp32_path, input_names=["x"], output_names=["score"],
                      dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.paths = iter(calibration)

        def get_next(self):
            path = next(self.paths, None)
            if path is None:
                return None
            return {"x": predictor.net_input(predictor.load_photo(path))[None].numpy()}

    convs = [n.name for n in onnx.load(fp32_path).graph.node
             if n.op_type == "Conv" and n.name.startswith(("/layer", "/conv1"))]  # backbone
    print(f"ONNX Runtime int8: {len(convs)} convolutions quantised", file=sys.stderr)
    quant_pre_process(fp32_path, pre_path)
    quantize_static(pre_path, int8_path, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_quantize=convs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return {name: session_route(ort.InferenceSession(path, options,
                                                     providers=["CPUExecutionProvider"]))
            for name, path in (("ONNX Runtime fp32", fp32_path),
                               ("ONNX Runtime int8", int8_path))}


def session_route(session) -> Route:
    """An ONNX Runtime session as a route."""
    return lambda x: session.run(["score"], {"x": x.numpy()})[0].reshape(-1)


def installed(*names: str) -> bool:
    return all(importlib.util.find_spec(n) is not None for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--limit", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    args = parser.parse_args()

    reference = Predictor.from_checkpoint(default_weights_path(), "cpu", "fp32", engine="torch")
    inputs = load_inputs(reference, args.photos, args.limit)
    calibration = calibration_paths(args.calibration)
    routes: dict[str, Route] = {"torch fp32": predictor_route(reference)}
    bf16 = native_bf16_cpu()
    if bf16:
        routes["torch bf16 (stages 2-4)"] = predictor_route(reference.in_precision("bf16"))
    if args.compile:
        routes["torch.compile fp32"] = compiled_route(reference)
    if openvino_installed():
        routes["OpenVINO fp32"] = predictor_route(reference.in_precision("fp32", "openvino"))
        if bf16:
            routes["OpenVINO bf16 (stages 2-4)"] = predictor_route(
                reference.in_precision("bf16", "openvino"))
        if installed("nncf"):
            routes["OpenVINO int8 (stages 2-4, NNCF)"] = openvino_int8_route(reference,
                                                                              calibration)
    if installed("onnxruntime", "onnx"):
        routes.update(onnxruntime_routes(reference, calibration, inputs[:1]))

    gflop = roofline.memo_gflop()
    print(f"machine: {machine()}; {torch.get_num_threads()} threads")
    print(f"{len(inputs)} photos from {args.photos}, batches of {args.batch_size}; "
          f"{gflop:.2f} GFLOP/photo\n")
    print("| route | photos/s | GFLOP/s | max \\|score − torch fp32\\| | within 0.01 |")
    print("|---|---:|---:|---:|---|")
    expected = None
    for name, route in routes.items():
        rate, scores = run_route(route, inputs, args.batch_size)
        expected = scores if expected is None else expected
        diff = float(np.abs(scores - expected).max())
        print(f"| {name} | {rate:.1f} | {rate * gflop:.0f} | {diff:.4f} | "
              f"{'yes' if diff <= 0.01 else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
