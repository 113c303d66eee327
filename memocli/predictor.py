"""The model session: one V-Net on one device in one precision, ready to score photos.

A :class:`Predictor` owns everything besides the weights that decides a score: the decode
rule (:func:`memocli.decode.load_image` at the model's input size), the eval transform, the
memory layout and the autocast policy. Every scorer, explainer, report and evaluator goes
through one, so they agree with each other, and its :attr:`~Predictor.model_id` names all of
it (:mod:`memocli.model_id`), so the cache never mixes up scores made differently::

    vnet_r50-28e4da1c5e57fc0a-p2-bf16-ov2026.4.1

An ensemble or multi-head checkpoint is one V-Net, so it is one Predictor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .data import eval_transform
from .decode import load_image
from .device import pick_device
from .engines import compiled_vnet, engine_cache_dir, openvino_version, pick_engine
from .errors import MemoError
from .inference import default_batch_size, image_batches
from .machine import describe_cpu
from .model import VNet
from .model_id import Variant, model_id
from .ov_network import CompiledVNet
from .precision import Precision, compute_dtype
from .results import BatchResult, embedding, refuse_non_finite

log = logging.getLogger(__name__)


class Predictor:
    """A V-Net on ``device`` that scores in ``precision`` (a
    :data:`~memocli.precision.PRECISIONS` choice; the parts it reduces are
    :meth:`~memocli.precision.Precision.scoring`'s) with ``engine`` (an
    :data:`~memocli.engines.ENGINES` choice), with the preprocessing its scores depend on.

    Build one from a checkpoint with :meth:`from_checkpoint`; ``Predictor(model, ...)``
    wraps a model already in memory (``checkpoint_id`` then names it; default: its
    architecture). The module is put in eval mode, on ``device``, channels-last where that
    is faster (CPU, CUDA; MPS's support is patchy). An OpenVINO backbone is built on the
    first forward pass (Grad-CAM, which needs gradients, always uses :attr:`model`), and
    kept under ``engines/`` unless ``keep_engines`` is False (``--no-cache``).
    """

    def __init__(self, model: VNet, device: torch.device | str = "cpu", precision: str = "auto",
                 *, checkpoint_id: str | None = None, meta: dict[str, Any] | None = None,
                 origin: str | os.PathLike | None = None, engine: str = "torch",
                 keep_engines: bool = True):
        self.device = torch.device(device)
        self.precision = Precision.scoring(compute_dtype(precision, self.device.type))
        self.engine = pick_engine(engine, self.device.type, self.dtype_name)
        self._openvino: CompiledVNet | None = None
        self.keep_engines = keep_engines
        self.memory_format = (torch.channels_last if self.device.type in ("cpu", "cuda")
                              else torch.contiguous_format)
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        self.checkpoint_id = checkpoint_id or model.cfg.name
        self.meta = meta or {}
        self.origin = origin  # the checkpoint file, named when its model misbehaves
        self.transform = eval_transform(model.cfg)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: torch.device | str = "auto",
                        precision: str = "auto", engine: str = "auto",
                        keep_engines: bool = True) -> Predictor:
        """Load a memo checkpoint (``device``: ``auto`` or a name, see :func:`pick_device`)."""
        from . import checkpoint  # looked up on use: tests may stand in for load_checkpoint

        dev = device if isinstance(device, torch.device) else pick_device(device)
        loaded = checkpoint.load_checkpoint(path, device=dev)
        return cls(loaded.model, dev, precision, checkpoint_id=loaded.checkpoint_id,
                   meta=loaded.meta, origin=path, engine=engine, keep_engines=keep_engines)

    @classmethod
    def of(cls, source: Predictor | Any) -> Predictor:
        """``source`` itself if it is a Predictor; else a float32 one around the
        :class:`~memocli.checkpoint.LoadedModel` or bare :class:`VNet`, on its device."""
        if isinstance(source, Predictor):
            return source
        model = getattr(source, "model", source)
        return cls(model, next(model.parameters()).device, "fp32",
                   checkpoint_id=getattr(source, "checkpoint_id", None),
                   meta=getattr(source, "meta", None))

    def in_precision(self, precision: str, engine: str | None = None) -> Predictor:
        """The same module (shared, not copied) scoring in another precision (and engine;
        None: this one's)."""
        return Predictor(self.model, self.device, precision, checkpoint_id=self.checkpoint_id,
                         meta=self.meta, origin=self.origin, engine=engine or self.engine,
                         keep_engines=self.keep_engines)

    @property
    def cfg(self):
        """The model's :class:`~memocli.registry.ModelConfig`."""
        return self.model.cfg

    @property
    def dtype_name(self) -> str:
        """``fp32``, ``bf16`` or ``fp16``: what stages 2-4 compute in."""
        return self.precision.dtype

    @property
    def variant(self) -> Variant:
        """How this Predictor computes: dtype, device class, engine (and its release)."""
        release = openvino_version() if self.engine == "openvino" else ""
        return Variant(self.dtype_name, self.device.type, self.engine, release)

    @property
    def model_id(self) -> str:
        """What a score depends on: the checkpoint, the preprocessing, :attr:`variant`."""
        return model_id(self.checkpoint_id, self.variant)

    # --- preprocessing ----------------------------------------------------------------------

    def load_photo(self, path: str | os.PathLike) -> Image.Image:
        """Decode ``path`` as scoring does (upright RGB, JPEG draft at the input size).

        Raises what the decoder raises for an unusable file (callers in a run go through
        :func:`memocli.decode.try_decode`).
        """
        return load_image(path, self.cfg.input_size)

    def net_input(self, image: Image.Image) -> torch.Tensor:
        """The network input ``[3, H, W]`` (on the CPU) of a decoded photo."""
        return self.transform(image)

    # --- the forward pass -----------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[B]`` (float32) and the last block's pooled features ``[B, C]`` of a
        batch on the device, each part computed in the dtype :attr:`precision` gives it
        (the OpenVINO engine compiles the same split: :mod:`memocli.ov_network`)."""
        if self.engine == "openvino":
            scores, last = self.openvino_network()(x.numpy())
            return torch.from_numpy(scores), torch.from_numpy(last)
        _, pooled = self.precision.run_backbone(self.model, x, self.device.type)
        return self.precision.run_heads(self.model, pooled, self.device.type), pooled[-1]

    def openvino_network(self) -> CompiledVNet:
        """The model compiled by OpenVINO (converted once per machine, then read back;
        a model in memory without a checkpoint id, whose weights have no name to be filed
        under, or one that must leave nothing on disk, is converted in memory every time).

        Raises:
            MemoError: OpenVINO cannot convert or compile this model.
        """
        if self._openvino is None:
            try:
                named = self.checkpoint_id != self.cfg.name and self.keep_engines
                self._openvino = compiled_vnet(self.model, self.precision, self.checkpoint_id,
                                               engine_cache_dir() if named else None)
            except (RuntimeError, ImportError) as e:  # OpenVINO's errors are RuntimeErrors
                reason = " ".join(str(e).split())[:300] or type(e).__name__  # one line
                raise MemoError(f"checkpoint {self.origin or self.checkpoint_id}: OpenVINO "
                                f"cannot run it ({reason}); use --engine torch") from None
        return self._openvino

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` on a batch of network inputs from anywhere (moved to the device)."""
        layout = torch.contiguous_format if self.engine == "openvino" else self.memory_format
        return self.forward(batch.to(self.device, non_blocking=True).contiguous(
            memory_format=layout))

    def iter_predictions(self, paths: Sequence[str | os.PathLike], batch_size: int | None = None,
                         workers: int | None = None) -> Iterator[BatchResult]:
        """Score ``paths`` batch by batch, decoding in DataLoader workers.

        Yields one :class:`BatchResult` per batch, in order, so callers can save as they go;
        a file that cannot be decoded comes back as a failure and the rest are scored.

        Raises:
            MemoError: the model gave a NaN or infinite score (:func:`memocli.results.refuse_non_finite`).
        """
        batch_size = batch_size or default_batch_size(self.device)
        log.info("model on %s in %s with %s, batches of %d, %s decoding process(es), "
                 "%d photo(s)", self.device, self.dtype_name, self.engine_text(), batch_size,
                 "automatic" if workers is None else workers, len(paths))
        if self.device.type == "cpu":
            log.info("CPU %s", describe_cpu())
        self.model.eval()
        for indices, tensors, failures in image_batches(
                [Path(p) for p in paths], self.transform, self.cfg.input_size, batch_size,
                workers, pin_memory=self.device.type == "cuda"):
            result = BatchResult(failures=failures)
            if tensors is not None:
                scores, last = self.predict(tensors)  # one pass for both
                result.indices, result.scores = indices, scores.cpu().tolist()
                result.features = embedding(last.cpu().numpy())
                refuse_non_finite(result, paths, self.origin or self.checkpoint_id)
            yield result

    def engine_text(self) -> str:
        """``'OpenVINO 2026.4.1'`` or ``'torch 2.14.1'``, for logs and benchmarks."""
        if self.engine == "openvino":
            return f"OpenVINO {openvino_version()}"
        return f"torch {torch.__version__}"


def iter_predictions(model: VNet, paths: Sequence[str | os.PathLike], device: torch.device,
                     batch_size: int | None = None, workers: int | None = None,
                     precision: str = "auto", engine: str = "torch") -> Iterator[BatchResult]:
    """:meth:`Predictor.iter_predictions` for a model already in memory."""
    return Predictor(model, device, precision, engine=engine).iter_predictions(
        paths, batch_size, workers)
