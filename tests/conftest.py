"""Shared fixtures: isolated memo state, a tiny checkpoint, generated photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from PIL import Image

from memocli.checkpoint import save_checkpoint
from memocli.cli import cli
from memocli.model import VNet
from memocli.registry import get_config

#: The shared datasets, beside the repository (``../shared``, as CI has them).
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TEST_DEVICE = os.environ.get("MEMO_TEST_DEVICE", "cpu")
TEST_ENGINE = os.environ.get("MEMO_TEST_ENGINE", "torch")


@pytest.fixture(autouse=True)
def isolated_memo_home(tmp_path, monkeypatch):
    """Point every piece of user state (cache, weights override) at a temp folder."""
    home = tmp_path / "memo-home"
    monkeypatch.setenv("MEMO_HOME", str(home))
    monkeypatch.setenv("MEMO_DEVICE", TEST_DEVICE)
    # The CLI's engine in tests is torch unless MEMO_TEST_ENGINE says otherwise: it spares
    # each test a network conversion. tests/test_default_engine.py runs every scoring
    # command on the default engine; MEMO_TEST_ENGINE=auto runs every test on it (the long
    # process check in docs/performance.md; tests that assert torch's model ids fail then).
    monkeypatch.setenv("MEMO_ENGINE", TEST_ENGINE)
    # The suite's photos are small solid-colour pictures, which memo rightly calls icons
    # or blank images: tests rank every kind unless they say otherwise
    # (tests/test_kinds.py unsets it).
    monkeypatch.setenv("MEMO_INCLUDE_ALL", "1")
    monkeypatch.delenv("MEMO_WEIGHTS", raising=False)
    monkeypatch.delenv("MEMO_MODEL", raising=False)
    return home


def write_photo(path: Path, color=(128, 128, 128), size=(48, 40), **save_kwargs) -> Path:
    """Write a small solid-colour image (format from the suffix) with a gradient stripe."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    for x in range(size[0]):
        img.putpixel((x, size[1] // 2), (x * 5 % 256, 255 - x * 5 % 256, 40))
    img.save(path, **save_kwargs)
    return path


@pytest.fixture
def make_photos(tmp_path):
    """``make_photos(n, folder='photos')`` -> n JPEGs of different brightness."""

    def make(n: int = 6, folder: str = "photos") -> list[Path]:
        return [
            write_photo(tmp_path / folder / f"img_{i:03d}.jpg", color=(20 + 37 * i % 230,) * 3)
            for i in range(n)
        ]

    return make


def tiny_checkpoint_at(path: Path, seed: int = 0) -> Path:
    """Save a randomly initialised ``vnet_tiny`` checkpoint (different seed, different model)."""
    torch.manual_seed(seed)
    model = VNet(get_config("vnet_tiny"))
    with torch.no_grad():
        model.primary_head.regressor.bias.fill_(0.6)
    return save_checkpoint(path, model, metrics={}, train_data={"data": "none"},
                           backbone_init="random")


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """A tiny V-Net checkpoint file (fast on CPU, input 64x64)."""
    return tiny_checkpoint_at(tmp_path / "tiny.pt")


def interrupting(real, on_call: int, exc: type[BaseException] = KeyboardInterrupt):
    """A stand-in for ``real`` that raises ``exc`` on its ``on_call``-th call (as Ctrl-C or
    a crash would there) and otherwise calls through."""
    calls = []

    def stand_in(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            raise exc
        return real(*args, **kwargs)

    return stand_in


def invoke(args: list[str], code: int = 0) -> Result:
    """Run ``memo ARGS`` in-process and check its exit code (output shown when it differs)."""
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    return result


def score_in_a_fresh_process(args: list[str]) -> tuple[list[dict], bool]:
    """``memo score ARGS --json -s`` in a new Python process: its rows, and whether it
    imported torch (a process of its own, since this one has torch loaded)."""
    code = (
        "import sys\nfrom memocli.cli import cli\n"
        f"cli(['score', *{[str(a) for a in args]!r}, '-s', '--json'], standalone_mode=False)\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    rows, said = proc.stdout.rsplit("\n", 2)[:2]
    assert said in ("no torch", "torch loaded"), proc.stdout + proc.stderr
    return json.loads(rows), said == "torch loaded"
