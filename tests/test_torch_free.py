"""Once a checkpoint is converted, scoring new photos imports neither torch nor
torchvision: `memo score`, `export`, `report --heatmaps 0` and `xmp` run with `import
torch` made to fail, and give the scores of the torch-loaded OpenVINO path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import invoke, write_photo

from memocli import engines

pytestmark = pytest.mark.skipif(not engines.openvino_installed(),
                                reason="OpenVINO is not installed")

#: Runs memo with torch and torchvision unimportable, as on a machine without them.
WITHOUT_TORCH = """
import sys
from importlib.abc import MetaPathFinder

class NoTorch(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoTorch())
from memocli.cli import cli
cli(sys.argv[1:], prog_name="memo")
"""


def memo_without_torch(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("MEMO_ENGINE", None)  # the default engine
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def converted(tmp_path, make_photos, tiny_checkpoint, monkeypatch):
    """A library scored once on the default engine (the network converted, the model id
    remembered), and a second folder of new photos."""
    monkeypatch.delenv("MEMO_ENGINE")
    folder = make_photos(3)[0].parent
    invoke(["score", str(folder), "-w", str(tiny_checkpoint), "-s"])
    new = tmp_path / "new"
    for i, colour in enumerate([(200, 40, 40), (40, 200, 40)]):
        write_photo(new / f"new_{i}.jpg", color=colour, size=(90, 70))
    return folder, new


def scores(text: str) -> dict[str, float]:
    return {os.path.basename(r["path"]): r["raw_score"] for r in json.loads(text)}


def test_score_new_photos_without_torch(converted, tiny_checkpoint, tmp_path):
    _, new = converted
    run = memo_without_torch("score", str(new), "-w", str(tiny_checkpoint), "--json")
    assert run.returncode == 0, run.stderr
    assert "2 scored now" in run.stderr
    got = scores(run.stdout)
    # the same photos scored by the torch-loaded OpenVINO path, in a cache of its own
    expected = scores(invoke(["score", str(new), "-w", str(tiny_checkpoint), "--cache",
                              str(tmp_path / "other.db"), "--json"]).stdout)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6)


def test_a_new_cache_starts_without_torch(converted, tiny_checkpoint, tmp_path):
    """A cache that has never seen the checkpoint finds its model id in the converted
    network's name (the checkpoint's digest), and remembers it; its scores are those of
    the cache that loaded the checkpoint with torch."""
    folder, _ = converted
    fresh = tmp_path / "fresh.db"
    run = memo_without_torch("score", str(folder), "-w", str(tiny_checkpoint), "--cache",
                             str(fresh), "--json")
    assert run.returncode == 0, run.stderr
    expected = scores(invoke(["score", str(folder), "-w", str(tiny_checkpoint), "--json"]).stdout)
    assert scores(run.stdout) == pytest.approx(expected, abs=1e-6)
    again = memo_without_torch("score", str(folder), "-w", str(tiny_checkpoint), "--cache",
                               str(fresh), "--json")
    assert again.returncode == 0 and "3 scored now" not in again.stderr, again.stderr


def test_a_new_cache_with_another_checkpoint_needs_torch(converted, tiny_checkpoint, tmp_path):
    """No converted network of that digest: the id is not guessed, torch loads it."""
    folder, _ = converted
    other = tmp_path / "other.pt"
    data = tiny_checkpoint.read_bytes()
    other.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # another digest
    run = memo_without_torch("score", str(folder), "-w", str(other), "--cache",
                             str(tmp_path / "fresh.db"))
    assert run.returncode != 0 and "blocked" in run.stderr


@pytest.mark.parametrize("command", [["export", "{out}/ranks.csv"],
                                     ["report", "--heatmaps", "0", "--out", "{out}/r.html"],
                                     ["xmp"]])
def test_other_scoring_commands_without_torch(converted, tiny_checkpoint, tmp_path, command):
    _, new = converted
    args = [a.format(out=tmp_path) for a in command]
    run = memo_without_torch(args[0], str(new), *args[1:], "-w", str(tiny_checkpoint))
    assert run.returncode == 0, run.stderr
    assert "blocked" not in run.stderr


def test_without_a_converted_network_torch_is_needed(make_photos, tiny_checkpoint,
                                                     monkeypatch):
    """The test's blocker works: with nothing converted yet, memo needs torch."""
    monkeypatch.delenv("MEMO_ENGINE")
    folder = make_photos(2)[0].parent
    run = memo_without_torch("score", str(folder), "-w", str(tiny_checkpoint))
    assert run.returncode != 0 and "blocked" in run.stderr


def test_jobs_of_any_size_score_without_torch(converted, tiny_checkpoint, tmp_path):
    """The converted network scores whatever the number of photos (its decoding threads
    beat the Predictor's worker processes once torch's start-up counts:
    docs/performance.md, "Every job skips torch"); --no-cache keeps the Predictor."""
    from memocli.cache import Cache
    from memocli.ov_scorer import OpenVINOScorer
    from memocli.predictor import Predictor
    from memocli.score import ModelSource

    with Cache(tmp_path / "memo-home" / "memo.db") as cache:
        device = os.environ["MEMO_DEVICE"]  # as the CLI ran (the remembered setup)
        assert isinstance(ModelSource(tiny_checkpoint, cache, device).scorer(), OpenVINOScorer)
        source = ModelSource(tiny_checkpoint, cache, device)
        source.keep_engines = False
        assert isinstance(source.scorer(), Predictor)