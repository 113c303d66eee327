"""The activation cache: the frozen part of a V-Net, run once per image and its mirror image.

Training a head (or the last stages) on a frozen backbone need not run the frozen stages
every epoch: :class:`FeatureBank` computes their output once per image, for the image and
its horizontal mirror (the two views the ``flip`` augmentation draws from), and keeps it in
memory and, with a store folder, on disk between runs.

An entry depends on the frozen weights, which stages are frozen, the preprocessing
(:data:`memocli.registry.PREPROCESSING_VERSION`, input size, normalisation, low-passes) and
the dtype the backbone ran in; all of them are part of the store file's name, so a change to
any of them recomputes the entries instead of mixing old and new ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm import tqdm

from . import distributed
from .data import ImageScoreDataset, LabeledImage, eval_transform
from .files import atomic_write
from .inference import default_workers, worker_loader
from .model import STAGES, VNet
from .precision import Precision, torch_dtype
from .registry import PREPROCESSING_VERSION

#: Activations are stored in half precision (half the memory of float32).
STORED_DTYPE = torch.float16


def progress(iterable, silent: bool, **kwargs):
    """A tqdm bar on rank 0 unless ``silent``, and only on a terminal (tqdm's
    ``disable=None``): a log gets no ``\r`` frames."""
    quiet = silent or not distributed.is_main()
    return tqdm(iterable, disable=True if quiet else None, leave=False,
                dynamic_ncols=True, **kwargs)


def frozen_blocks(model: VNet, frozen_stages: int) -> int:
    """How many residual blocks the first ``frozen_stages`` stages hold."""
    return sum(len(getattr(model.backbone, s)) for s in STAGES[:frozen_stages])


def cache_key(model: VNet, frozen_stages: int, computed_in: str) -> str:
    """Digest of everything a cached activation depends on (see the module docstring)."""
    cfg = model.cfg
    h = hashlib.sha256(json.dumps({
        "preprocessing": PREPROCESSING_VERSION,
        "input": [cfg.backbone, list(cfg.stage_blocks), cfg.input_size, list(cfg.mean),
                  list(cfg.std), cfg.input_blur, cfg.blur_strides],
        "frozen_stages": frozen_stages,
        "computed_in": str(torch_dtype(computed_in)),
        "stored_as": str(STORED_DTYPE),
    }).encode())
    frozen = ("conv1.", "bn1.", *(f"{s}." for s in STAGES[:frozen_stages]))
    for name, tensor in model.backbone.state_dict().items():
        if name.startswith(frozen):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureBank:
    """Cached frozen activations of images, computed on first use.

    With ``frozen_stages=4`` (a fully frozen backbone) an entry is the pooled output of every
    block, ``[2, D]`` with D the sum of the block channel counts (15,104 for ResNet-50).
    With fewer frozen stages it is also the activation where the trainable stages start,
    ``[2, C, h, w]`` (1024x14x14 for ResNet-50 at 224 with one trainable stage), so that
    fine-tuning the last stages costs only their own compute. View 0 is the image, view 1
    its mirror.

    ``precision`` is the training precision requested (:meth:`Precision.training`): what
    the frozen stages compute in.

    With ``store`` (a folder), entries persist across runs in ``features-KEY.pt``
    (:func:`cache_key`); an entry is reused only while its image's size and modification
    time are unchanged.
    """

    def __init__(self, model: VNet, device: torch.device, batch_size: int = 32,
                 workers: int | None = None, silent: bool = False, frozen_stages: int = 4,
                 store: Path | None = None, key: str | None = None, precision: str = "auto"):
        self.model = model
        self.device = device
        self.precision = Precision.training(device.type, precision)
        self.batch_size = batch_size
        self.workers = workers
        self.silent = silent
        self.frozen_stages = frozen_stages
        self.key = key or cache_key(model, frozen_stages, self.precision.dtype)
        self._pooled: dict[Path, torch.Tensor] = {}
        self._activations: dict[Path, torch.Tensor] = {}
        self._file = Path(store) / f"features-{self.key}.pt" if store else None
        if self._file is not None and self._file.is_file():
            self._load()

    @staticmethod
    def _stat(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]

    def _load(self) -> None:
        saved = torch.load(self._file, map_location="cpu", weights_only=True)
        for key, entry in saved.items():
            path = Path(key)
            try:
                fresh = self._stat(path) == entry["stat"].tolist()
            except OSError:
                fresh = False
            if fresh:
                self._pooled[path] = entry["pooled"]
                if "act" in entry:
                    self._activations[path] = entry["act"]

    def _save(self) -> None:
        entries = {}
        for path, pooled in self._pooled.items():
            entry = {"stat": torch.tensor(self._stat(path)), "pooled": pooled}
            if path in self._activations:
                entry["act"] = self._activations[path]
            entries[str(path)] = entry
        with atomic_write(self._file) as f:
            torch.save(entries, f)

    def features(self, items: list[LabeledImage]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``([N, 2, D_frozen], [N, 2, C, h, w] or None)`` for ``items``, computing new ones."""
        keys = [i.path.resolve() for i in items]  # one entry per file, however it is named
        missing = [k for k in keys if k not in self._pooled]
        # the same list on every rank, whatever each one found in its store
        missing = list(dict.fromkeys(k for part in distributed.gather(missing) for k in part))
        if missing:
            self._compute(missing)
        pooled = torch.stack([self._pooled[k] for k in keys])
        if self.frozen_stages == len(STAGES):
            return pooled, None
        return pooled, torch.stack([self._activations[k] for k in keys])

    def _compute(self, paths: list[Path]) -> None:
        """Each rank runs the backbone on its share of ``paths``; then all have them all."""
        share = self._run(paths[distributed.rank()::distributed.world_size()])
        for part in distributed.gather(share):
            for path, (pooled, act) in part.items():
                self._pooled[path] = pooled
                if act is not None:
                    self._activations[path] = act
        if self._file is not None and distributed.is_main():
            self._save()

    @torch.inference_mode()
    def _run(self, paths: list[Path]) -> dict[Path, tuple[torch.Tensor, torch.Tensor | None]]:
        model, cfg = self.model, self.model.cfg
        dataset = ImageScoreDataset(
            [LabeledImage(p, 0.0) for p in paths], eval_transform(cfg), cfg.input_size
        )
        workers = (default_workers(len(paths), self.batch_size) if self.workers is None
                   else self.workers)
        loader = worker_loader(dataset, self.batch_size, workers, cfg.input_size,
                               pin_memory=self.device.type == "cuda")
        model.eval()
        done, entries = 0, {}
        partial = self.frozen_stages < len(STAGES)
        precision = self.precision
        for images, _ in progress(loader, self.silent, desc="backbone features", unit="batch"):
            n = len(images)
            images = images.to(self.device, non_blocking=True)
            views = torch.cat([images, images.flip(3)])  # [2B, 3, H, W]
            act, pooled = precision.run_backbone(model, views, self.device.type, 0,
                                                 self.frozen_stages)
            pooled = torch.cat(pooled, dim=1).view(2, n, -1).transpose(0, 1)  # [B, 2, D]
            pooled = pooled.to(STORED_DTYPE).cpu()
            act = act.to(STORED_DTYPE).view(2, n, *act.shape[1:]).transpose(0, 1).cpu()
            for k in range(n):
                entries[paths[done + k]] = (pooled[k].clone(), act[k].clone() if partial else None)
            done += n
        return entries


def cached_activation_bytes(model: VNet, n_images: int, frozen_stages: int) -> int:
    """Memory a :class:`FeatureBank` needs for ``n_images`` (two fp16 views each)."""
    if frozen_stages == len(STAGES):
        return n_images * 2 * 2 * sum(model.block_channels)
    was_training = model.training
    model.eval()  # a probe in training mode would move the batch-norm running statistics
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            probe = torch.zeros(1, 3, model.cfg.input_size, model.cfg.input_size, device=device)
            act, _ = model.run_stages(model.stem(probe), 0, frozen_stages)
    finally:
        model.train(was_training)
    return n_images * 2 * 2 * (act[0].numel() + sum(model.block_channels))


class FeatureBanks:
    """The feature banks of one command, shared by its folds and its LR range test.

    A bank is reused whenever its :func:`cache_key` matches (every fold starts from the
    same backbone), so each image's frozen activations are computed once per command.
    """

    def __init__(self, device: torch.device, batch_size: int = 32, workers: int | None = None,
                 silent: bool = False, store: Path | None = None, precision: str = "auto"):
        self.device = device
        self.precision = Precision.training(device.type, precision).dtype
        self.batch_size = batch_size
        self.workers = workers
        self.silent = silent
        self.store = store
        self._banks: dict[str, FeatureBank] = {}

    def bank(self, model: VNet, frozen_stages: int) -> FeatureBank:
        """The bank of ``model``'s first ``frozen_stages`` stages."""
        key = cache_key(model, frozen_stages, self.precision)
        if key not in self._banks:
            self._banks[key] = FeatureBank(model, self.device, self.batch_size, self.workers,
                                           self.silent, frozen_stages, self.store, key,
                                           self.precision)
        return self._banks[key]
