"""Multi-process training under ``torchrun``: process group, ranks, samplers, gathers.

Without torchrun every helper answers as a single process (rank 0 of 1) and no
collective is ever called, so training code uses them unconditionally.

Under torchrun (``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set), :func:`init` joins the
process group: NCCL with ``cuda:LOCAL_RANK`` on GPUs, gloo on the CPU. Python objects
(predictions, cached activations, checkpoints) travel over a gloo group in both cases, so
they never take GPU memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

T = TypeVar("T")

_object_group: Any = None  # gloo group for object collectives (the default one on CPU)


def launched_by_torchrun() -> bool:
    """True when torchrun started this process as one of several."""
    return (all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
            and int(os.environ["WORLD_SIZE"]) > 1)


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group if launched by it; the device this process uses.

    On CUDA each process takes ``cuda:LOCAL_RANK`` (NCCL); elsewhere ``device`` (gloo).
    A plain process gets ``device`` back and nothing else happens.
    """
    global _object_group
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
        _object_group = dist.new_group(backend="gloo")
    else:
        dist.init_process_group("gloo")
    return device


def cleanup() -> None:
    """Leave the process group (no-op when there is none)."""
    global _object_group
    if dist.is_initialized():
        dist.destroy_process_group()
    _object_group = None


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the process that writes checkpoints, logs and progress bars."""
    return rank() == 0


def gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order (``[obj]`` for a single process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=_object_group)
    return out


def from_main(make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 only, its result sent to every rank.

    For what only rank 0 may read (its run folder need not be shared with other nodes).
    """
    if not dist.is_initialized():
        return make()
    box = [make() if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=_object_group)
    return box[0]


def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` on every rank."""
    return from_main(lambda: obj)


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel (gradients averaged over ranks), or as it is.

    Train through the wrapper and save ``module`` itself, so checkpoint keys carry no
    ``module.`` prefix.
    """
    if not dist.is_initialized():
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def local_batch_size(batch_size: int) -> int:
    """Per-process share of a global batch (rounded up)."""
    return -(-batch_size // world_size())


def sampler(n: int, shuffle: bool, seed: int = 0) -> DistributedSampler:
    """This rank's share of ``range(n)``.

    Shuffled: one permutation per epoch (call ``set_epoch``), the same on every rank, dealt
    out round-robin; so with a per-rank batch of ``B / world`` the union of the ranks' k-th
    batches is a single process's k-th batch of ``B``. The share is padded by repeating
    indices to be equal on every rank: drop repeats before computing metrics
    (:func:`gather_by_index`).
    """
    return DistributedSampler(range(n), num_replicas=world_size(), rank=rank(),
                              shuffle=shuffle, seed=seed)


def gather_by_index(indices: list[int], values: list[T], n: int) -> list[T]:
    """Every rank's ``values`` (for its ``indices`` of ``range(n)``) put back in order.

    Indices a sampler repeated for padding are taken once.
    """
    merged: dict[int, T] = {}
    for part_indices, part_values in gather((indices, values)):
        merged.update(zip(part_indices, part_values, strict=True))
    return [merged[i] for i in range(n)]
