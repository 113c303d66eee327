"""`memo train` under torchrun: two CPU processes (gloo) train like one process."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from conftest import interrupting
from test_train import brightness_dataset

from memocli import distributed
from memocli.checkpoint import load_checkpoint
from memocli.cli import cli

# float32: two processes and one give the same weights to 1e-4 only without bf16 rounding
ARGS = ["--model", "vnet_tiny", "--epochs", "4", "--lr-max", "3e-3", "--batch-size", "16",
        "--device", "cpu", "--precision", "fp32", "-s"]


def train_in_process(*args, **kwargs):
    return CliRunner().invoke(cli, ["train", *args, *ARGS], **kwargs)


@pytest.mark.slow
def test_torchrun_trains_like_one_process_and_resumes_its_run(tmp_path, monkeypatch):
    import memocli.train as train_module

    # odd validation and test sizes: the samplers pad them, the metrics must not count twice
    data = brightness_dataset(tmp_path / "ds", n_train=64, n_val=31, n_test=33, folds=(1, 2))
    single = train_in_process(str(data), "--folds", "1-2", "--out", str(tmp_path / "single"),
                              catch_exceptions=False)
    assert single.exit_code == 0, single.output

    # fold 2 was interrupted during epoch 3 by a one-process run; torchrun resumes it
    runs = tmp_path / "ddp"
    monkeypatch.setattr(train_module, "regression_metrics",
                        interrupting(train_module.regression_metrics, 3))
    assert train_in_process(str(data), "--fold", "2", "--out", str(runs / "fold_2")).exit_code == 130
    monkeypatch.undo()

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "memocli", "train", str(data), "--folds", "1-2", "--out", str(runs), "--resume",
         *ARGS],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("fold 1: best epoch") == 1  # rank 0 alone reports
    assert "x 2 processes" in run.stderr and "resuming" in run.stderr

    got = json.loads((runs / "summary.json").read_text())["folds"]
    want = json.loads((tmp_path / "single" / "summary.json").read_text())["folds"]
    for fold in ("1", "2"):
        assert got[fold]["val_n"] == 31 and got[fold]["test_n"] == 33
        assert got[fold]["test_rho"] > 0.8  # it learned
        for key in ("val_rho", "test_rho"):
            assert got[fold][key] == pytest.approx(want[fold][key], abs=1e-3), (fold, key)
        assert got[fold]["test_mse"] == pytest.approx(want[fold]["test_mse"], rel=1e-2)
    with open(runs / "fold_2" / "metrics.csv", newline="") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == [1, 2, 3, 4]

    raw = torch.load(runs / "fold_1" / "best.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in raw["state_dict"])
    ddp_model = load_checkpoint(runs / "fold_1" / "best.pt").model.state_dict()
    one_model = load_checkpoint(tmp_path / "single" / "fold_1" / "best.pt").model.state_dict()
    assert all(torch.allclose(ddp_model[k].float(), v.float(), atol=1e-4)
               for k, v in one_model.items())


def test_without_torchrun_everything_is_one_process(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not distributed.launched_by_torchrun()
    cpu = torch.device("cpu")
    assert distributed.init(cpu) == cpu
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.gather("x") == ["x"] and distributed.broadcast(3) == 3
    module = torch.nn.Linear(2, 1)
    assert distributed.wrap(module, cpu) is module
    sampler = distributed.sampler(5, shuffle=False)
    assert list(sampler) == [0, 1, 2, 3, 4]
    assert distributed.gather_by_index([2, 0, 1], ["c", "a", "b"], 3) == ["a", "b", "c"]
