"""Batched prediction over image files: decode in DataLoader workers, score on a device.

A file that cannot be decoded does not stop the run: it comes back as a failure with the
reason, and the rest of its batch is scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .data import DECODE_ERRORS, describe_decode_error, eval_transform, load_image
from .device import pick_dtype
from .model import STAGES, VNet


@dataclass
class BatchResult:
    """Scores and features for the decodable files of one batch; why the others failed.

    ``features[i]`` is :func:`embedding` of ``indices[i]``'s last backbone block.
    """

    indices: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    features: list[bytes] = field(default_factory=list)


def embedding(pooled: torch.Tensor) -> list[bytes]:
    """L2-normalised pooled features ``[B, C]`` as little-endian float16 bytes, one per row."""
    unit = torch.nn.functional.normalize(pooled.float(), dim=1)
    return [row.tobytes() for row in unit.cpu().numpy().astype("<f2")]


class _ImageFiles(Dataset):
    """Decodes and preprocesses image files; a failure becomes ``(index, None, reason)``."""

    def __init__(self, paths: Sequence[Path], transform, min_side: int):
        self.paths = paths
        self.transform = transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_image(self.paths[index], self.min_side)
            return index, self.transform(image), None
        except DECODE_ERRORS as e:
            return index, None, describe_decode_error(e)


def _collate(batch):
    ok = [(i, t) for i, t, err in batch if err is None]
    failures = [(i, err) for i, _, err in batch if err is not None]
    tensors = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], tensors, failures


def forward(model: VNet, x: torch.Tensor, dtype: torch.dtype | None
            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Scores ``[B]`` (float32) and pooled block features of a batch, in one pass.

    With a ``dtype``, stages 2-4 run under autocast in it; the stem and the first stage,
    whose rounding errors every later block would carry, and the LSTM head stay float32.
    This keeps scores within 0.005 of all-float32 on LNSIM's test photos (all stages in
    bfloat16: 0.018) at most of the speed (``docs/performance.md``).
    """
    if dtype is None:
        pooled = model.pooled_block_features(x)
    else:
        x, pooled = model.run_stages(model.stem(x), 0, 1)
        with torch.autocast(x.device.type, dtype=dtype):
            _, rest = model.run_stages(x, 1, len(STAGES))
        pooled += [p.float() for p in rest]
    return model.head(pooled).float(), pooled


def default_batch_size(device: torch.device) -> int:
    """Images per batch: 16 on a CPU (faster there than 32: ``docs/performance.md``), else 64."""
    return 16 if device.type == "cpu" else 64


def default_workers(n_files: int, batch_size: int) -> int:
    """Decode workers: none for tiny jobs, else up to one per spare core (max 8)."""
    if n_files <= batch_size:
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def iter_predictions(
    model: VNet,
    paths: Sequence[Path],
    device: torch.device,
    batch_size: int | None = None,
    workers: int | None = None,
    precision: str = "auto",
) -> Iterator[BatchResult]:
    """Score ``paths`` batch by batch with the model's own preprocessing.

    ``precision`` is a :data:`memocli.device.PRECISIONS` choice (see :func:`forward`).
    Yields one :class:`BatchResult` per batch, in order, so callers can save as they go.
    """
    cfg = model.cfg
    batch_size = batch_size or default_batch_size(device)
    dtype = pick_dtype(precision, device)
    memory_format = torch.channels_last if device.type in ("cpu", "cuda") else None
    if memory_format:  # faster convolutions on both; MPS's support is patchy
        model.to(memory_format=memory_format)
    dataset = _ImageFiles(list(paths), eval_transform(cfg), min_side=cfg.input_size)
    workers = default_workers(len(paths), batch_size) if workers is None else workers
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    model.eval()
    with torch.inference_mode():
        for indices, tensors, failures in loader:
            result = BatchResult(failures=failures)
            if tensors is not None:
                x = tensors.to(device, non_blocking=True)
                if memory_format:
                    x = x.contiguous(memory_format=memory_format)
                scores, pooled = forward(model, x, dtype)  # one pass for both
                scores = scores.cpu().tolist()
                result.indices, result.scores = indices, scores
                result.features = embedding(pooled[-1])
            yield result
