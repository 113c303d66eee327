"""A small /dev/shm (Docker's 64 MB default) is met with fewer decoding workers, not a hang.

DataLoader workers hand their batches over in /dev/shm; when it is full a worker fails and
the run waits for it for ever. The free space is what ``os.statvfs`` answers: the tests
fake that answer for /dev/shm alone, and everything else is real (workers, model, cache).
"""

from __future__ import annotations

import logging
import os

import pytest
import torch
from conftest import invoke, write_photo

from memocli import inference
from memocli.data import LabeledImage
from memocli.features import FeatureBank
from memocli.inference import SHARED_MEMORY, fit_shared_memory
from memocli.model import VNet
from memocli.registry import get_config
from memocli.training_paths import FullImages

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
        monkeypatch.setattr(inference, "_said", set())  # each test hears its own line

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


def test_training_and_feature_loaders_fit_shared_memory_too(tmp_path, shm_free, caplog):
    photos = [write_photo(tmp_path / f"p{i}.png", color=(20 * i, 90, 90)) for i in range(8)]
    items = [LabeledImage(p, 0.1 * i) for i, p in enumerate(photos)]
    model = VNet(get_config("vnet_tiny"))
    shm_free(2 * MB)  # batches of 8 tiny inputs: room for 2 workers, 1 batch ahead
    with caplog.at_level(logging.WARNING, logger="memocli.inference"):
        training = FullImages(model, items, torch.zeros(8, dtype=torch.long), 8, 4,
                              torch.device("cpu"), "crop")
        loader = training.train_batches(epoch=0)
        assert (loader.num_workers, loader.prefetch_factor) == (2, 1)
        assert sum(len(x) for x, *_ in loader) == 8
        training.train_batches(epoch=1)  # said once per run, not once per epoch
        pooled, _ = FeatureBank(model, torch.device("cpu"), batch_size=4, workers=4,
                                silent=True).features(items)
    assert len(pooled) == 8
    assert [r.getMessage().split(" (Docker")[0] for r in caplog.records] == [
        "/dev/shm has 2 MB free; 4 decoding process(es) need about 4 MB for batches of 0 MB: "
        "using 2, 1 batch(es) ahead",  # training: said once, not once per epoch
        "/dev/shm has 2 MB free; 4 decoding process(es) need about 2 MB for batches of 0 MB: "
        "using 4, 1 batch(es) ahead"]  # the activation cache's loader, batches of 4
