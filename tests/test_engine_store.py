"""The folder of converted networks: a damaged, swapped or half-saved network is never
used, nothing blocks on a FIFO, ``--no-cache`` leaves nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy
import pytest
import torch
from conftest import invoke, tiny_checkpoint_at

from memocli import engines, ov_store
from memocli.checkpoint import load_checkpoint
from memocli.engines import compiled_vnet, converted_networks, engine_cache_dir
from memocli.precision import Precision

pytestmark = pytest.mark.skipif(not engines.openvino_installed(),
                                reason="OpenVINO is not installed")
FP32 = Precision.scoring("fp32")


@pytest.fixture
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint, device="cpu").model.eval()


def photos_input(model, n=4):
    size = model.cfg.input_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(3)).numpy()


def stored(suffix: str):
    return next(engine_cache_dir().glob(f"tiny-x-ov*{suffix}"))


def scores_after(damage, model) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Scores of a fresh conversion, and those after ``damage`` to the saved network."""
    x = photos_input(model)
    expected = compiled_vnet(model, FP32, "tiny-x", engine_cache_dir())(x)[0]
    damage()
    return expected, compiled_vnet(model, FP32, "tiny-x", engine_cache_dir())(x)[0]


def assert_intact():
    """The saved network matches its manifest again (it was converted and saved anew)."""
    assert ov_store.checked_paths(engine_cache_dir(), stored(".xml").name[:-4]) is not None


def test_zeroed_bin_is_converted_again(model):
    def zero():
        size = stored(".bin").stat().st_size
        stored(".bin").write_bytes(bytes(size))  # same size: once an abort in OpenVINO

    expected, got = scores_after(zero, model)
    numpy.testing.assert_array_equal(got, expected)
    assert_intact()


def test_flipped_byte_is_converted_again(model):
    def flip():
        data = bytearray(stored(".bin").read_bytes())
        data[len(data) // 2] ^= 0x40  # once silently wrong scores
        stored(".bin").write_bytes(bytes(data))

    expected, got = scores_after(flip, model)
    numpy.testing.assert_array_equal(got, expected)
    assert_intact()


def test_swapped_bin_from_another_checkpoint_is_converted_again(model, tmp_path):
    other = load_checkpoint(tiny_checkpoint_at(tmp_path / "other.pt", seed=7)).model.eval()
    compiled_vnet(other, FP32, "tiny-y", engine_cache_dir())
    other_bin = next(engine_cache_dir().glob("tiny-y-ov*.bin"))

    def swap():
        assert other_bin.stat().st_size == stored(".bin").stat().st_size
        os.replace(other_bin, stored(".bin"))  # the same architecture's weights: same size

    expected, got = scores_after(swap, model)
    numpy.testing.assert_array_equal(got, expected)
    assert_intact()


def test_a_fifo_in_place_of_a_network_file_does_not_hang(tiny_checkpoint, make_photos):
    folder = make_photos(2)[0].parent
    args = ["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "openvino",
            "--precision", "fp32", "--no-cache", "-s"]
    invoke(args[:-2] + ["--cache", str(folder.parent / "c.db"), "-s"])
    bin_file = next(engine_cache_dir().glob("*.bin"))
    bin_file.unlink()
    os.mkfifo(bin_file)
    code = "import sys; from memocli.cli import cli; cli(sys.argv[1:])"
    cache_args = args[:-2] + ["--cache", str(folder.parent / "c2.db"), "-s"]
    run = subprocess.run([sys.executable, "-c", code, *cache_args], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "MEMO_ENGINE": "auto"})
    assert run.returncode == 0, run.stderr
    assert bin_file.is_file()  # the FIFO was replaced by a good network


def test_a_killed_save_leaves_nothing_counted_and_is_cleaned(model):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = engine_cache_dir()
    folder.mkdir(parents=True)
    host = socket.gethostname().replace(".", "_")
    leftovers = [folder / f"tiny-x-ov2026.1.tmp-{host}-{dead.pid}{s}" for s in (".xml", ".bin")]
    running = folder / f"tiny-z-ov2026.1.tmp-{host}-{os.getpid()}.bin"  # a save under way
    for f in (*leftovers, running):
        f.write_bytes(b"\0" * 1000)
    assert converted_networks() == {"path": str(folder), "networks": 0, "size_bytes": 0}
    compiled_vnet(model, FP32, "tiny-x", folder)
    assert not any(f.exists() for f in leftovers) and running.exists()
    assert converted_networks()["networks"] == 1


def test_no_cache_writes_no_converted_network(tiny_checkpoint, make_photos):
    folder = make_photos(2)[0].parent
    invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--engine", "openvino",
            "--no-cache", "-s"])
    assert not engine_cache_dir().exists()


def age(path, seconds):
    """Make ``path`` look last written and read ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_network_unused_for_long_goes_at_the_next_save_with_old_compiled_files(model):
    folder = engine_cache_dir()
    compiled_vnet(model, FP32, "tiny-old", folder)
    compiled_vnet(model, FP32, "tiny-recent", folder)
    age(next(folder.glob("tiny-old-ov*.json")), ov_store.UNUSED_AFTER_S + 3600)
    age(next(folder.glob("tiny-recent-ov*.json")), ov_store.UNUSED_AFTER_S - 3600)
    stale_compiled = folder / "compiled" / "1234.blob"
    stale_compiled.write_bytes(b"\0" * 100)
    age(stale_compiled, ov_store.UNUSED_AFTER_S + 3600)
    in_use_compiled = [f for f in (folder / "compiled").iterdir() if f != stale_compiled]

    compiled_vnet(model, FP32, "tiny-new", folder)

    assert not list(folder.glob("tiny-old-ov*"))
    assert len(list(folder.glob("tiny-recent-ov*"))) == len(list(folder.glob("tiny-new-ov*"))) == 3
    assert not stale_compiled.exists()
    assert in_use_compiled and all(f.exists() for f in in_use_compiled)
    assert converted_networks()["networks"] == 2


def test_reading_a_network_marks_it_used_so_it_is_kept(model):
    folder = engine_cache_dir()
    compiled_vnet(model, FP32, "tiny-x", folder)
    manifest = stored(".json")
    age(manifest, ov_store.UNUSED_AFTER_S + 3600)
    x = photos_input(model)
    compiled_vnet(model, FP32, "tiny-x", folder)(x)  # a later run reads it
    assert time.time() - manifest.stat().st_mtime < 600

    compiled_vnet(model, FP32, "tiny-y", folder)
    assert ov_store.checked_paths(folder, manifest.name[:-len(".json")]) is not None
