"""Batches of network inputs decoded from image files in DataLoader workers.

A file that cannot be decoded does not stop the run: it comes back as a failure with the
reason, and the rest of its batch is kept. :class:`memocli.predictor.Predictor` scores
these batches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .decode import load_image, try_decode
from .results import CPU_BATCH_SIZE

log = logging.getLogger(__name__)

#: Where DataLoader workers put the batches they hand over (torch's shared memory, with
#: either sharing strategy, on Linux), and the share of its free space memo plans to use.
SHARED_MEMORY = "/dev/shm"
_SHM_SHARE = 0.8
_MB = 1 << 20
_said: set[str] = set()  # shared-memory lines already logged (a training run asks per epoch)
#: Batches a worker prepares ahead (DataLoader's default prefetch_factor).
_PREFETCH = 2

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
        path = self.paths[index]
        image, failure = try_decode(lambda: load_image(path, self.min_side), path)
        if image is None:
            return index, None, failure
        return index, self.transform(image), None


def collate(batch) -> Batch:
    """Stack the decoded inputs of a batch; keep the failures apart."""
    ok = [(i, t) for i, t, err in batch if err is None]
    failures = [(i, err) for i, _, err in batch if err is not None]
    tensors = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], tensors, failures


def default_batch_size(device: torch.device) -> int:
    """Images per batch: :data:`~memocli.results.CPU_BATCH_SIZE` on a CPU, else 64."""
    return CPU_BATCH_SIZE if device.type == "cpu" else 64


def default_workers(n_files: int, batch_size: int) -> int:
    """Decode workers: none for tiny jobs, else up to one per spare core (max 8)."""
    if n_files <= batch_size:
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def shared_memory_free() -> int | None:
    """Bytes free in :data:`SHARED_MEMORY`, or None where there is no such folder."""
    try:
        st = os.statvfs(SHARED_MEMORY)
    except (OSError, AttributeError):  # macOS has no /dev/shm, Windows no statvfs
        return None
    return st.f_bavail * st.f_frsize


def fit_shared_memory(workers: int, batch_bytes: int) -> tuple[int, int]:
    """``(workers, prefetch)`` whose batches in flight fit the free shared memory.

    Each worker hands ``prefetch`` batches ahead over shared memory, and the main process
    holds up to two it has taken. A small ``/dev/shm`` (Docker's default is 64 MB; a
    GPU-sized run of 4 workers with batches of 64 needs about 400 MB) makes a worker fail
    and the run wait for it for ever, whatever the sharing strategy (torch's
    ``file_system`` strategy lives there too): memo then asks for fewer batches ahead,
    then fewer workers, else decodes in the main process, and says so in one line.
    """
    free = shared_memory_free()
    if workers == 0 or free is None:
        return workers, _PREFETCH
    budget = int(free * _SHM_SHARE) // batch_bytes  # batches that fit

    def fits(n: int, prefetch: int) -> bool:
        return n * prefetch + 2 <= budget

    choice = next(((n, prefetch) for n in range(workers, 0, -1) for prefetch in (_PREFETCH, 1)
                   if fits(n, prefetch)), (0, _PREFETCH))
    message = (f"{SHARED_MEMORY} has {round(free / _MB)} MB free; {workers} decoding "
               f"process(es) need about {round((workers * _PREFETCH + 2) * batch_bytes / _MB)}"
               f" MB for batches of {round(batch_bytes / _MB)} MB: "
               + (f"using {choice[0]}, {choice[1]} batch(es) ahead" if choice[0]
                  else "decoding in this process instead")
               + " (Docker: --shm-size=1g gives them room)")
    if choice != (workers, _PREFETCH) and message not in _said:
        _said.add(message)
        log.warning("%s", message)
    return choice


def worker_loader(dataset: Dataset, batch_size: int, workers: int, input_size: int,
                  views: int = 1, **options) -> DataLoader:
    """A DataLoader of ``dataset`` (``views`` square ``input_size`` float32 images an item)
    with as many of ``workers`` as shared memory has room for (:func:`fit_shared_memory`);
    ``options`` go to the DataLoader. Every loader of decoded images is made here."""
    batch_bytes = batch_size * views * 3 * input_size ** 2 * 4
    workers, prefetch = fit_shared_memory(workers, batch_bytes)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                      prefetch_factor=prefetch if workers else None, **options)


def image_batches(paths: Sequence[Path], transform: Callable, min_side: int, batch_size: int,
                  workers: int | None = None, pin_memory: bool = False) -> DataLoader:
    """The :data:`Batch` of each ``batch_size`` of ``paths``, in order, decoded with
    ``load_image(path, min_side)`` (through :func:`~memocli.decode.try_decode`) and
    ``transform`` in ``workers`` processes (None: :func:`default_workers`), as many as
    shared memory has room for (:func:`fit_shared_memory`)."""
    workers = default_workers(len(paths), batch_size) if workers is None else workers
    return worker_loader(ImageFiles(paths, transform, min_side), batch_size, workers,
                         min_side, collate_fn=collate, pin_memory=pin_memory,
                         persistent_workers=False)
