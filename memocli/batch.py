"""``memo batch``: score a library beyond one machine with Ray Data, Parquet out, resumable.

The pipeline, streamed (no stage waits for the whole of the one before)::

    SOURCE -> rows (path, size, mtime_ns)      batch_inputs: scan, URI listing or manifest
      -> left anti-join with DEST's rows       batch_parts.done_keys: a re-run skips them
      -> read_photos (tasks, 1 CPU each)       each file read once: SHA-256, EXIF facts,
                                               memo's decoder (HEIC, RAW) and transform
      -> PhotoScorer (actor pool)              memo's Predictor, loaded once per actor
      -> write_parquet(DEST)                   batch_parts.SCHEMA, one row per photo

A photo that cannot be read or decoded becomes a row with its ``error``; the job goes on.
The checkpoint travels through Ray's object store (read once by the driver), so workers
need no shared file system; its model id is resolved once, on a worker with the actors'
resources (a GPU picks another precision than a CPU), before anything is skipped.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import batch_inputs, batch_parts
from .errors import MemoError

#: What a decoding task reserves: a worker with PIL loaded and a batch of photos being
#: decoded (Ray measured up to 575 MiB on the development machine when the workers also
#: loaded torchvision; they no longer do).
DECODE_TASK_MEMORY = 768 * 2**20


@dataclass(frozen=True)
class ScoringSetup:
    """How every actor builds its Predictor (the checkpoint's bytes travel apart)."""

    checkpoint: str  # as the user named it, for messages
    device: str = "auto"
    precision: str = "auto"
    engine: str = "auto"
    threads: int | None = None  # torch threads per actor on a CPU (None: torch's default)


@dataclass(frozen=True)
class Resources:
    """What Ray reserves for the scoring actors, and how work is cut."""

    actors: int = 1
    gpus_per_actor: float = 0
    cpus_per_actor: float = 1
    batch_size: int = 16
    rows_per_file: int = 10_000


@dataclass
class BatchReport:
    """What a ``memo batch`` run did."""

    model_id: str
    written: int = 0  # rows this run added to DEST
    errors: int = 0  # of which photos that could not be read or decoded
    already: int = 0  # rows DEST held before the run (all models)
    problems: list[tuple[str, str]] = field(default_factory=list)  # not even listed
    error_examples: list[tuple[str, str]] = field(default_factory=list)
    broken_parts: list[str] = field(default_factory=list)
    ranked: str | None = None  # DEST/ranked/ when --rank


def load_predictor(checkpoint: bytes, setup: ScoringSetup):
    """memo's Predictor from a checkpoint's bytes (written to a temporary file first)."""
    from .predictor import Predictor

    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(checkpoint)
        f.flush()
        predictor = Predictor.from_checkpoint(f.name, setup.device, setup.precision,
                                              setup.engine)
    predictor.origin = setup.checkpoint
    return predictor


def _model_facts(checkpoint: bytes, setup: ScoringSetup):
    """``(model_id, cfg)`` as an actor with these resources will score (a Ray task)."""
    predictor = load_predictor(checkpoint, setup)
    return predictor.model_id, predictor.cfg


def read_photos(batch: pa.Table, cfg: Any) -> pa.Table:
    """Each photo of ``batch`` read once: content hash, facts, and network input
    (``pixels``: the resized photo's uint8 ``[S, S, 3]`` bytes, a quarter of the float
    input's, normalised by the actor; null where it failed, with ``error`` saying why).
    Torch-free: a decoding worker never imports torch."""
    from .decode import load_image, try_decode
    from .exif import read_image_meta
    from .files import read_failure
    from .preprocess import resized_pixels

    facts = ("width", "height", "taken_at", "camera", "kind")
    out: dict[str, list] = {k: [] for k in ("sha256", *facts, "error", "pixels")}
    for path in batch.column("path").to_pylist():
        sha256 = meta = error = pixels = None
        try:
            with batch_inputs.LocalCopy(path) as copy:
                sha256 = copy.sha256
                meta = read_image_meta(copy.local)
                image, error = try_decode(partial(load_image, copy.local, cfg.input_size), path)
                if image is not None:
                    pixels = resized_pixels(image, cfg.input_size).tobytes()
        except OSError as e:  # the file is gone or cannot be read
            error = read_failure(e)
        for key, value in (("sha256", sha256), ("error", error), ("pixels", pixels)):
            out[key].append(value)
        for key in facts:
            out[key].append(getattr(meta, key) if meta is not None else None)
    table = batch.select(list(batch_parts.RESUME_KEY))
    for name, values in out.items():
        kind = pa.binary() if name == "pixels" else batch_parts.SCHEMA.field(name).type
        table = table.append_column(name, pa.array(values, kind))
    return table


class PhotoScorer:
    """Scores decoded photos: one memo Predictor per actor, loaded once."""

    def __init__(self, checkpoint_refs: list, setup: ScoringSetup, model_id: str):
        import ray
        import torch

        # the reference comes in a list: Ray then holds it for the actor's whole life
        self.predictor = load_predictor(ray.get(checkpoint_refs[0]), setup)
        if self.predictor.model_id != model_id:
            raise MemoError(f"this worker scores as {self.predictor.model_id}, not "
                            f"{model_id} (a cluster of mixed devices: pin --precision)")
        if setup.threads and self.predictor.device.type == "cpu":
            torch.set_num_threads(setup.threads)
        self.model_id = model_id

    def __call__(self, batch: pa.Table) -> pa.Table:
        import torch

        from .preprocess import normalised
        from .score import display_score

        pixels = batch.column("pixels").to_pylist()
        ok = [p is not None for p in pixels]
        raw: list[float | None] = [None] * len(ok)
        if any(ok):
            cfg = self.predictor.cfg
            side = cfg.input_size
            x = np.frombuffer(bytearray().join(p for p in pixels if p is not None), np.uint8)
            x = normalised(x.reshape(-1, side, side, 3), cfg.mean, cfg.std)
            scores, _ = self.predictor.predict(torch.from_numpy(x))
            it = iter(scores.cpu().tolist())
            raw = [next(it) if k else None for k in ok]
        paths = batch.column("path").to_pylist()
        for path, value in zip(paths, raw, strict=True):
            if value is not None and not math.isfinite(value):
                raise MemoError(f"checkpoint {self.predictor.origin}: its score for {path} is "
                                "not finite (NaN or infinity); refused")
        table = batch.drop_columns(["pixels"])
        table = table.append_column("raw_score", pa.array(raw, pa.float64()))
        table = table.append_column("score", pa.array(
            [display_score(v) if v is not None else None for v in raw], pa.float64()))
        table = table.append_column("model_id", pa.array([self.model_id] * len(ok)))
        return table.select(batch_parts.SCHEMA.names).cast(batch_parts.SCHEMA)


def _connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` ($RAY_ADDRESS when None), else start a local one."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=True)


def _resolve_model(checkpoint_ref, setup: ScoringSetup, res: Resources):
    import ray
    from ray.exceptions import RayTaskError

    task = ray.remote(num_gpus=res.gpus_per_actor, num_cpus=1)(_model_facts)
    try:
        return ray.get(task.remote(checkpoint_ref, setup))
    except RayTaskError as e:
        if isinstance(e.cause, MemoError):
            raise MemoError(str(e.cause)) from None
        raise


def _source_dataset(source: str, res: Resources, echo, include_hidden: bool):
    """SOURCE as a Ray dataset of (path, size, mtime_ns) rows; problems echoed."""
    import ray.data

    if batch_inputs.is_manifest(source):
        return batch_inputs.read_manifest(source), []
    listing = batch_inputs.list_source(source, include_hidden)
    for path, reason in listing.problems:
        echo(f"skipped {path}: {reason}")
    if not len(listing):
        raise MemoError(f"no images found in {source}")
    table = pa.table(listing.rows)
    step = res.batch_size * 4  # rows per input block: tasks stream, outputs come early
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, len(table), step)]), \
        listing.problems


def run_batch(source: str, dest: str, weights: str | os.PathLike, setup: ScoringSetup,
              res: Resources = Resources(), *, rank: bool = False,
              address: str | None = None, include_hidden: bool = False,
              echo=lambda message: None) -> BatchReport:
    """Score every photo of SOURCE not yet in DEST for this model; write Parquet to DEST.

    Raises:
        MemoError: no photos, an unusable checkpoint or a model that gives non-finite
            scores (photos that cannot be read are rows with an error, not failures).
    """
    import ray
    import ray.data

    from .ensemble import is_manifest

    if is_manifest(weights):
        raise MemoError(f"{weights}: memo batch scores with one checkpoint, not an ensemble "
                        "manifest (such as accurate or stable); pass a checkpoint")
    try:
        checkpoint = Path(weights).read_bytes()
    except OSError as e:
        from .files import os_reason

        raise MemoError(f"{weights}: cannot read checkpoint: {os_reason(e)}") from None
    _connect(address)
    checkpoint_ref = ray.put(checkpoint)
    model_id, cfg = _resolve_model(checkpoint_ref, setup, res)
    ds, problems = _source_dataset(source, res, echo, include_hidden)
    before = batch_parts.list_parts(dest)
    for path in before.broken:
        echo(f"passed over {path}: not a whole Parquet file (a run cut short); its photos "
             "are scored again")
    keys = batch_parts.done_keys(before, model_id)
    if keys is not None:
        ds = ds.join(keys, "left_anti", num_partitions=max(1, res.actors),
                     on=batch_parts.RESUME_KEY)
    ds = ds.map_batches(read_photos, fn_kwargs={"cfg": cfg},
                        batch_size=res.batch_size, batch_format="pyarrow",
                        # a reservation unlike the actors' also keeps Ray from fusing
                        # decoding into them: photos decode in parallel with the model
                        num_cpus=1, memory=DECODE_TASK_MEMORY)
    ds = ds.map_batches(PhotoScorer, fn_constructor_args=([checkpoint_ref], setup, model_id),
                        batch_size=res.batch_size, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=res.actors),
                        num_gpus=res.gpus_per_actor,
                        num_cpus=res.cpus_per_actor)
    ds.write_parquet(dest, min_rows_per_file=res.rows_per_file)
    after = batch_parts.list_parts(dest)
    written = batch_parts.new_parts(before, after)
    report = BatchReport(model_id, written=sum(written.values()), already=before.rows,
                         problems=problems, broken_parts=before.broken)
    report.errors = batch_parts.error_count(written, after.filesystem)
    if report.errors:
        report.error_examples = batch_parts.first_errors(written, after.filesystem)
    if rank:
        from .batch_rank import write_ranked

        report.ranked = write_ranked(after, model_id)
    return report
