"""Scoring photos with a converted network already on disk, without torch.

Once a checkpoint has been converted for OpenVINO (:mod:`memocli.engines`, which needs
torch), its network and manifest in ``engines/`` (:mod:`memocli.ov_store`) hold all that
scoring needs: the whole model and the input size and normalisation. A run that scores new
photos then imports neither torch nor torchvision (about 4 s of start-up on a small
machine: ``docs/performance.md``). Photos are decoded by :func:`memocli.decode.load_image`
in threads (Pillow releases the GIL) and made network inputs by
:func:`memocli.preprocess.net_input`, pixel for pixel what the torch path feeds the same
network, so the scores are the torch path's OpenVINO scores under the same model id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from . import ov_store
from .decode import load_image, try_decode
from .files import decode_threads
from .model_id import Variant, family_of, model_id
from .ov_network import CompiledVNet
from .precision import Precision
from .preprocess import net_input
from .registry import PREPROCESSING_VERSION
from .results import CPU_BATCH_SIZE, BatchResult, embedding, refuse_non_finite

log = logging.getLogger(__name__)


def _openvino_variant(model_id: str) -> tuple[str, str, str] | None:
    """``(checkpoint id, dtype, OpenVINO release)`` of an OpenVINO model id on the CPU
    (``vnet_r50-28e4…-p2-bf16-ov2026.4.1``); None for any other id."""
    family = family_of(model_id)
    if family is None or not family.endswith(f"-p{PREPROCESSING_VERSION}"):
        return None
    dtype, _, engine = model_id[len(family) + 1:].partition("-")
    if dtype not in ("fp32", "bf16") or not engine.startswith("ov") or len(engine) < 3:
        return None
    return family.removesuffix(f"-p{PREPROCESSING_VERSION}"), dtype, engine[2:]


def converted_model_id(checkpoint: Path, device: str, precision: str, engine: str
                       ) -> str | None:
    """The model id a Predictor would give ``checkpoint`` here, found without torch: the
    converted network in ``engines/`` of the checkpoint's digest, for a run sure to score
    with OpenVINO on the CPU (``device`` cpu, or auto with no GPU; ``engine`` auto or
    openvino; a float32 or bfloat16 ``precision``). None otherwise, or when no such network
    is there (the Predictor then decides). This lets a new cache start without torch."""
    from .engines import engine_cache_dir, pick_engine
    from .files import hash_file
    from .precision import compute_dtype
    from .setup_key import gpu_facts, installed_release

    if (checkpoint.suffix != ".pt" or device not in ("cpu", "auto")
            or (device == "auto" and gpu_facts() != "no gpu")):
        return None
    dtype = compute_dtype(precision, "cpu")
    if pick_engine(engine, "cpu", dtype) != "openvino":
        return None
    release = installed_release("openvino")
    pattern = ov_store.network_stem(f"*-{hash_file(checkpoint)[:16]}", release) + ".json"
    stems = [p.name.removesuffix(".json") for p in engine_cache_dir().glob(pattern)]
    if len(stems) != 1:  # its files are checked when it is read (OpenVINOScorer.for_model)
        return None
    checkpoint_id = ov_store.stem_checkpoint_id(stems[0], release)
    return model_id(checkpoint_id, Variant(dtype, "cpu", "openvino", release))


class OpenVINOScorer:
    """Scores photos under ``model_id`` with a compiled network (no torch).

    Build one with :meth:`from_store`. It offers what scoring asks of a
    :class:`~memocli.predictor.Predictor`: :attr:`model_id` and :meth:`iter_predictions`.
    """

    engine = "openvino"

    def __init__(self, network: CompiledVNet, cfg: dict[str, Any], model_id: str,
                 origin: str | os.PathLike):
        self.network = network
        self.input_size = int(cfg["input_size"])
        self.mean, self.std = cfg["mean"], cfg["std"]
        self.model_id = model_id
        self.origin = origin

    @classmethod
    def for_model(cls, model_id: str, origin: str | os.PathLike) -> OpenVINOScorer | None:
        """:meth:`from_store` with the folder of converted networks and the installed
        OpenVINO (None when it is not installed)."""
        from .engines import engine_cache_dir
        from .setup_key import installed_release

        return cls.from_store(model_id, origin, engine_cache_dir(), installed_release("openvino"))

    @classmethod
    def from_store(cls, model_id: str, origin: str | os.PathLike, folder: Path,
                   openvino_release: str | None) -> OpenVINOScorer | None:
        """The scorer of ``model_id`` from the converted network in ``folder``, or None
        when that id is not an OpenVINO one of the installed ``openvino_release``, or its
        network is missing or damaged (then the torch path converts it again)."""
        from .engines import compiled_cache, read_network

        variant = _openvino_variant(model_id)
        if variant is None or variant[2] != openvino_release:
            return None
        checkpoint_id, dtype, release = variant
        stem = ov_store.network_stem(checkpoint_id, release)
        found = ov_store.checked_paths(folder, stem)
        if found is None:
            return None
        cfg = found[1].get("cfg") or {}
        try:
            network = read_network(folder, stem)
            if network is None:
                return None
            compiled = CompiledVNet(network, Precision.scoring(dtype),
                                    tuple(cfg["stage_blocks"]), compiled_cache(folder))
            return cls(compiled, cfg, model_id, origin)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            log.warning("cannot score with the converted network %s (%s); using torch",
                        stem, e)
            return None

    def _decode(self, path: Path) -> tuple[np.ndarray | None, str | None]:
        image, failure = try_decode(lambda: load_image(path, self.input_size), path)
        if image is None:
            return None, failure
        return net_input(image, self.input_size, self.mean, self.std), None

    def iter_predictions(self, paths: Sequence[str | os.PathLike], batch_size: int | None = None,
                         workers: int | None = None) -> Iterator[BatchResult]:
        """Score ``paths`` batch by batch, as :meth:`memocli.predictor.Predictor.
        iter_predictions` does; photos are decoded in ``workers`` threads (None:
        :func:`memocli.files.decode_threads`; 0 or 1: one), the next batch while
        the network runs on this one."""
        batch_size = batch_size or CPU_BATCH_SIZE
        threads = decode_threads() if workers is None else workers
        log.info("model on cpu with OpenVINO (no torch), batches of %d, %d decoding "
                 "thread(s), %d photo(s)", batch_size, threads, len(paths))
        files = [Path(p) for p in paths]
        starts = range(0, len(files), batch_size)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            def submit(start: int) -> list[Future]:
                return [pool.submit(self._decode, p) for p in files[start:start + batch_size]]

            pending = submit(0) if files else []
            for start in starts:
                decoded = [f.result() for f in pending]
                pending = submit(start + batch_size) if start + batch_size < len(files) else []
                yield self._score(start, decoded, paths)

    def _score(self, start: int, decoded: list[tuple[np.ndarray | None, str | None]],
               paths: Sequence[str | os.PathLike]) -> BatchResult:
        result = BatchResult(failures=[(start + i, why) for i, (x, why) in enumerate(decoded)
                                       if x is None])
        ok = [(start + i, x) for i, (x, _) in enumerate(decoded) if x is not None]
        if ok:
            scores, last = self.network(np.stack([x for _, x in ok]))
            result.indices = [i for i, _ in ok]
            result.scores = scores.tolist()
            result.features = embedding(last)
            refuse_non_finite(result, paths, os.fspath(self.origin))
        return result
