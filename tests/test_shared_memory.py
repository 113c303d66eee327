"""A small /dev/shm (Docker's 64 MB default) is met with fewer decoding workers, not a hang.

DataLoader workers hand their batches over in /dev/shm; when it is full a worker fails and
the run waits for it for ever. The free space is what ``os.statvfs`` answers: the tests
fake that answer for /dev/shm alone, and everything else is real (workers, model, cache).
"""

from __future__ import annotations

import logging
import os

import pytest
from conftest import invoke

from memocli import inference
from memocli.inference import SHARED_MEMORY, fit_shared_memory

MB = 1 << 20
GPU_BATCH = 64 * 3 * 224 * 224 * 4  # batch 64 of 224x224 float32 inputs: 38.5 MB


@pytest.fixture
def shm_free(monkeypatch):
    """``shm_free(bytes)``: /dev/shm says it has that much free from now on."""
    real = os.statvfs

    def set_free(free: int) -> None:
        def statvfs(path):
            if os.fspath(path) != SHARED_MEMORY:
                return real(path)
            block = 4096
            return os.statvfs_result((block, block, free // block, free // block,
                                      free // block, 1000, 1000, 1000, 0, 255))

        monkeypatch.setattr(inference.os, "statvfs", statvfs)

    return set_free


def test_dockers_64_mb_shm_makes_a_gpu_sized_run_decode_in_process(shm_free, caplog):
    shm_free(64 * MB)
    with caplog.at_level(logging.WARNING, logger="memocli.inference"):
        assert fit_shared_memory(4, GPU_BATCH) == (0, 2)
    assert [r.getMessage() for r in caplog.records] == [
        "/dev/shm has 64 MB free; 4 decoding process(es) need about 368 MB for batches of "
        "37 MB: decoding in this process instead (Docker: --shm-size=1g gives them room)"]


def test_a_tight_shm_keeps_as_many_workers_as_fit(shm_free, caplog):
    shm_free(300 * MB)  # room for 6 batches in flight, 2 of them in the main process
    with caplog.at_level(logging.WARNING, logger="memocli.inference"):
        assert fit_shared_memory(4, GPU_BATCH) == (4, 1)
        assert fit_shared_memory(8, GPU_BATCH) == (4, 1)
    assert len(caplog.records) == 2 and "using 4, 1 batch(es) ahead" in caplog.text


def test_a_roomy_shm_changes_nothing_and_says_nothing(shm_free, caplog):
    shm_free(8 << 30)
    with caplog.at_level(logging.WARNING, logger="memocli.inference"):
        assert fit_shared_memory(4, GPU_BATCH) == (4, 2)
        assert fit_shared_memory(0, GPU_BATCH) == (0, 2)
    assert caplog.records == []


def test_score_with_a_small_shm_scores_everything_and_says_so(tmp_path, make_photos,
                                                             tiny_checkpoint, shm_free,
                                                             caplog):
    photos = make_photos(12)
    shm_free(2 * MB)  # batches of 8 tiny inputs are 384 KB: 4 fit, 2 of them in this process
    with caplog.at_level(logging.WARNING, logger="memocli.inference"):
        result = invoke(["score", str(photos[0].parent), "--csv", "-w", str(tiny_checkpoint),
                         "--batch-size", "8", "--workers", "4", "--cache",
                         str(tmp_path / "c.db")])
    assert len(result.stdout.splitlines()) == 1 + 12
    assert [r.getMessage() for r in caplog.records] == [
        "/dev/shm has 2 MB free; 4 decoding process(es) need about 4 MB for batches of 0 MB: "
        "using 2, 1 batch(es) ahead (Docker: --shm-size=1g gives them room)"]
