"""Batches of network inputs decoded from image files in DataLoader workers.

A file that cannot be decoded does not stop the run: it comes back as a failure with the
reason, and the rest of its batch is kept. :class:`memocli.predictor.Predictor` scores
these batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .data import DECODE_ERRORS, describe_decode_error, load_image

#: One batch: indices of the decoded files, their stacked inputs (None if none decoded),
#: and ``(index, reason)`` for each file that could not be decoded.
Batch = tuple[list[int], "torch.Tensor | None", list[tuple[int, str]]]


class ImageFiles(Dataset):
    """Decodes and preprocesses image files; a failure becomes ``(index, None, reason)``."""

    def __init__(self, paths: Sequence[Path], transform: Callable, min_side: int):
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


def collate(batch) -> Batch:
    """Stack the decoded inputs of a batch; keep the failures apart."""
    ok = [(i, t) for i, t, err in batch if err is None]
    failures = [(i, err) for i, _, err in batch if err is not None]
    tensors = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], tensors, failures


def default_batch_size(device: torch.device) -> int:
    """Images per batch: 16 on a CPU (faster there than 32: ``docs/performance.md``), else 64."""
    return 16 if device.type == "cpu" else 64


def default_workers(n_files: int, batch_size: int) -> int:
    """Decode workers: none for tiny jobs, else up to one per spare core (max 8)."""
    if n_files <= batch_size:
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def image_batches(paths: Sequence[Path], transform: Callable, min_side: int, batch_size: int,
                  workers: int | None = None, pin_memory: bool = False) -> DataLoader:
    """The :data:`Batch` of each ``batch_size`` of ``paths``, in order, decoded with
    ``load_image(path, min_side)`` and ``transform`` in ``workers`` processes (None:
    :func:`default_workers`)."""
    workers = default_workers(len(paths), batch_size) if workers is None else workers
    return DataLoader(ImageFiles(paths, transform, min_side), batch_size=batch_size,
                      num_workers=workers, collate_fn=collate, pin_memory=pin_memory,
                      persistent_workers=False)
