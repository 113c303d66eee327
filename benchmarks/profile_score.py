#!/usr/bin/env python
"""Where the time of a first ``memo score`` goes, per photo and per stage, on the CPU.

Each stage of a cold-cache scan runs on its own over the same photos, as ``memo score``
calls it, and is timed with ``time.perf_counter`` after one warm-up call:

1. stat: ``os.stat`` of each file (one per file, as the scan does),
2. hash: :func:`memocli.files.hash_file` (SHA-256 of the content),
3. EXIF: :func:`memocli.exif.read_image_meta` (size, date taken, camera),
4. decode: :func:`memocli.decode.load_image` at the input size (JPEG draft),
5. net input: :meth:`memocli.predictor.Predictor.net_input` (resize, normalise),
6. the network, in batches of ``--batch-size``, channels-last: the stem and each ResNet
   stage (:meth:`VNet.stem`, :meth:`VNet.run_stages`) with their block poolings,
7. the head (:meth:`VNet.head`: the LSTM heads and the mixer),
8. SQLite: :meth:`Cache.record_files` per 64 files and :meth:`Cache.record_scores` per
   batch, one transaction each, into a throw-away cache file.

The network and head run in float32 and, on a CPU with native bfloat16
(:func:`memocli.device.native_bf16_cpu`), also in the Predictor's bf16 policy (stem and
layer1 in float32, layers 2-4 under autocast), each with torch and, when it is installed,
with OpenVINO (``--engine``): one column each. OpenVINO runs the backbone as one compiled
network, so its column has the whole pass only; torch's has each stage too (indented, a
breakdown of the whole pass, which is what the total counts). Stages run one after the
other, so the total is what a photo costs when nothing overlaps; ``memo score`` hashes and
reads EXIF in threads and decodes in worker processes alongside the model. Files are read
from the page cache once the hash stage has read them (as in ``memo score``). Start-up
(Python, torch, loading the checkpoint) is left out. Installs nothing; not part of
``make test``.

Usage:
    python benchmarks/profile_score.py [--photos DIR] [--limit 256] [--batch-size 16]
                                       [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from memocli.cache import Cache, ImageMeta
from memocli.decode import load_image
from memocli.device import native_bf16_cpu
from memocli.engines import openvino_installed
from memocli.exif import read_image_meta
from memocli.files import default_weights_path, hash_file
from memocli.model import STAGES
from memocli.predictor import Predictor
from memocli.results import embedding
from memocli.score import HASH_BATCH

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from score_speed import DEFAULT_PHOTOS, machine

#: A network engine: a batch of inputs ``[B, 3, H, W]`` -> the pooled block features.
Engine = Callable[[torch.Tensor], list[torch.Tensor]]
#: One network stage: ``x -> (x, pooled block features of the stage)``.
Stage = Callable[[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]


def ms_per_photo(seconds: float, photos: int) -> float:
    """``seconds`` spent on ``photos`` photos, in milliseconds per photo."""
    return 1000 * seconds / photos


def photos_in(batches: list[torch.Tensor]) -> int:
    """How many photos ``batches`` hold."""
    return sum(len(b) for b in batches)


def time_each(fn: Callable, items: Sequence, photos: int | None = None) -> tuple[float, list]:
    """ms per photo of ``fn`` over ``items`` (after one warm-up call), and its results;
    ``photos``: how many photos ``items`` hold (default: one each)."""
    fn(items[0])
    started = time.perf_counter()
    results = [fn(item) for item in items]
    return ms_per_photo(time.perf_counter() - started, photos or len(items)), results


def stages(predictor: Predictor) -> list[tuple[str, Stage]]:
    """The stem and each ResNet stage as ``predictor`` runs them (see ``Predictor.forward``):
    each in the dtype its precision policy gives it, poolings cast back to float32."""
    model, precision, device = predictor.model, predictor.precision, predictor.device.type

    def stem(x):
        with precision.autocast(device, precision.stage_dtype(0)):
            return model.stem(x), []

    def stage(i: int) -> Stage:
        def run(x):
            with precision.autocast(device, precision.stage_dtype(i)):
                x, pooled = model.run_stages(x, i, i + 1)
            return x, [p.float() for p in pooled]
        return run

    return [("stem", stem)] + [(name, stage(i)) for i, name in enumerate(STAGES)]


def time_stages(named: list[tuple[str, Stage]], batches: list[torch.Tensor]
                ) -> dict[str, float]:
    """ms per photo of each stage, chained stage to stage over ``batches`` (after a warm-up
    pass on the first batch)."""
    spent = dict.fromkeys((name for name, _ in named), 0.0)
    for warm_up, batch_list in ((True, batches[:1]), (False, batches)):
        for x in batch_list:
            for name, run in named:
                started = time.perf_counter()
                x, _ = run(x)
                if not warm_up:
                    spent[name] += time.perf_counter() - started
    return {name: ms_per_photo(s, photos_in(batches)) for name, s in spent.items()}


def time_network(engine: Engine, batches: list[torch.Tensor]
                 ) -> tuple[float, list[list[torch.Tensor]]]:
    """ms per photo of a whole pass of ``engine`` (after one warm-up batch), and its
    pooled features, batch by batch."""
    engine(batches[0])
    started = time.perf_counter()
    pooled = [engine(x) for x in batches]
    return ms_per_photo(time.perf_counter() - started, photos_in(batches)), pooled


def predictor_engine(predictor: Predictor) -> Engine:
    """``predictor``'s backbone pass: its stages chained, their poolings gathered."""
    named = stages(predictor)

    def run(x):
        pooled = []
        for _, stage in named:
            x, more = stage(x)
            pooled += more
        return pooled
    return run


def time_sqlite(files: list[tuple[str, str, int, int]], metas: dict[str, ImageMeta],
                model_id: str, scores: list[tuple[str, float]],
                features: list[tuple[str, bytes]], batch_size: int) -> float:
    """ms per photo of recording ``files`` (per :data:`HASH_BATCH`) and ``scores`` with
    ``features`` (per ``batch_size``) in a new cache file, as ``memo score`` does."""
    with tempfile.TemporaryDirectory() as tmp, Cache(Path(tmp) / "cache.db") as cache:
        cache.record_files([("/warm-up", "0" * 64, 1, 0)])
        cache.record_scores(model_id, [("0" * 64, 0.0)], [("0" * 64, b"")])
        started = time.perf_counter()
        for i in range(0, len(files), HASH_BATCH):
            batch = files[i:i + HASH_BATCH]
            cache.record_files(batch, {h: metas[h] for _, h, _, _ in batch})
        for i in range(0, len(scores), batch_size):
            cache.record_scores(model_id, scores[i:i + batch_size], features[i:i + batch_size])
        return ms_per_photo(time.perf_counter() - started, len(files))


def profile_model(predictor: Predictor, batches: list[torch.Tensor]
                  ) -> tuple[dict[str, float], float, list[float], list[bytes]]:
    """Per-stage (torch only) and head ms per photo of ``predictor``, its whole-pass ms per
    photo, and its scores and feature vectors."""
    if predictor.engine == "openvino":  # the whole model, heads included, in one pass
        network = predictor.openvino_network()
        whole, outputs = time_network(lambda x: network(x.numpy()), batches)
        scores = [s for batch, _ in outputs for s in batch.tolist()]
        features = [v for _, last in outputs for v in embedding(last)]
        return {"head": math.nan}, whole, scores, features
    rows = time_stages(stages(predictor), batches)
    whole, pooled = time_network(predictor_engine(predictor), batches)
    rows["head"], raw = time_each(lambda p: predictor.model.head(p).float(), pooled,
                                  photos_in(batches))
    scores = [s for batch in raw for s in batch.tolist()]
    features = [v for p in pooled for v in embedding(p[-1].numpy())]
    return rows, whole, scores, features


def pick_photos(folder: Path, limit: int) -> list[Path]:
    """The first ``limit`` JPEGs of ``folder``, sorted by name."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not photos:
        raise SystemExit(f"no JPEG photos in {folder}")
    return photos[:limit] if limit else photos


def print_table(rows: dict[str, list[float]], columns: list[str]) -> None:
    """The Markdown table: each stage's ms per photo and share of the total, per column,
    then the total and the photos/s it implies. Rows named with a leading space break the
    backbone's whole pass down (not counted twice; NaN where the engine cannot)."""
    totals = [sum(r[c] for name, r in rows.items() if not name.startswith(" "))
              for c in range(len(columns))]
    head = "| stage |" + "".join(f" {c} ms/photo | {c} % |" for c in columns)
    print(head)
    print("|---|" + "---:|---:|" * len(columns))
    for name, values in rows.items():
        label = f"&nbsp;&nbsp;{name.strip()}" if name.startswith(" ") else name
        print(f"| {label} |" + "".join(
            " – | |" if math.isnan(v) else f" {v:.3f} | {v / t:.1%} |"
            for v, t in zip(values, totals, strict=True)))
    print("| **total** |" + "".join(f" **{t:.2f}** | 100% |" for t in totals))
    print("| photos/s (serial) |" + "".join(f" {1000 / t:.1f} | |" for t in totals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--limit", type=int, default=256, help="photos to profile (0: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    paths = pick_photos(args.photos, args.limit)
    n = len(paths)
    fp32 = Predictor.from_checkpoint(default_weights_path(), "cpu", "fp32", engine="torch")
    precisions = ["fp32", "bf16"] if native_bf16_cpu() else ["fp32"]
    engines = ["torch", "openvino"] if openvino_installed() else ["torch"]
    predictors = [fp32.in_precision(p, e) for e in engines for p in precisions]
    print(f"profiling {n} photos ...", file=sys.stderr, flush=True)

    shared: dict[str, float] = {}
    shared["stat"], stats = time_each(os.stat, paths)
    shared["hash"], hashes = time_each(hash_file, paths)
    shared["EXIF"], metas = time_each(read_image_meta, paths)
    shared["decode"], images = time_each(lambda p: load_image(p, fp32.cfg.input_size), paths)
    shared["net input"], inputs = time_each(fp32.net_input, images)
    batches = [torch.stack(inputs[i:i + args.batch_size]).contiguous(
        memory_format=fp32.memory_format) for i in range(0, n, args.batch_size)]
    files = [(os.path.abspath(p), h, st.st_size, st.st_mtime_ns)
             for p, h, st in zip(paths, hashes, stats, strict=True)]
    by_hash = dict(zip(hashes, metas, strict=True))

    stage_names = ["stem", *STAGES]
    rows: dict[str, list[float]] = {}
    with torch.inference_mode():
        for predictor in predictors:
            print(f"network in {predictor.dtype_name} with {predictor.engine} ...",
                  file=sys.stderr, flush=True)
            model_rows, whole, scores, features = profile_model(predictor, batches)
            sqlite = time_sqlite(files, by_hash, predictor.model_id,
                                 list(zip(hashes, scores, strict=True)),
                                 list(zip(hashes, features, strict=True)), args.batch_size)
            breakdown = {f"  {name}": model_rows.get(name, float("nan"))
                         for name in stage_names}
            for name, ms in {**shared, "backbone": whole, **breakdown,
                             "head": model_rows["head"], "SQLite": sqlite}.items():
                rows.setdefault(name, []).append(ms)

    columns = [f"{p.engine} {p.dtype_name}" for p in predictors]
    print(f"machine: {machine()}; {torch.get_num_threads()} torch threads")
    print(f"{n} photos from {args.photos}, batches of {args.batch_size}, channels-last\n")
    print_table(rows, columns)
    print("\nbackbone: the whole pass (stages chained, no timer between them); its "
          "breakdown, timed stage by stage, adds the timers' overhead")


if __name__ == "__main__":
    main()
