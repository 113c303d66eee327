"""Crafted checkpoints are refused in one line, ``checkpoint PATH: reason``, before allocating."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest
import torch
from click.testing import CliRunner
from conftest import write_photo

from memocli import checkpoint_checks
from memocli.checkpoint import load_checkpoint
from memocli.cli import cli
from memocli.errors import MemoError
from memocli.registry import ModelConfig

REG = "heads.score.regressor"  # the single head's regressor


def crafted(tmp_path, tiny_checkpoint, change, name="crafted.pt"):
    """A copy of the tiny checkpoint with ``change(payload)`` applied."""
    payload = torch.load(tiny_checkpoint, weights_only=True)
    change(payload)
    path = tmp_path / name
    torch.save(payload, path)
    return path


def refused(path, match):
    with pytest.raises(MemoError, match=match) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"checkpoint {path}: ") and "\n" not in message
    return message


def setter(*keys, value):
    def change(payload):
        target = payload
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


@pytest.mark.parametrize("field, value, match", [
    ("input_size", 100000, "input_size 100000 must be a whole number from 32 to 1024"),
    ("input_size", "64", "input_size '64' must be a whole number"),
    ("std", [0, 0, 0], r"std \[0, 0, 0\] must be 3 numbers from 0.01 to 10"),
    ("mean", [float("nan"), 0.4, 0.4], "mean"),
    ("proj_channels", 10**9, "proj_channels"),
    ("stage_blocks", [1, 1, 1], "stage_blocks"),
    ("backbone", "__class__", "backbone '__class__' must be one of"),
    ("name", "\x1b[31mevil", "name"),
    ("input_blur", 50.0, "input_blur 50.0 must be a number from 0 to 4"),
    ("input_blur", float("inf"), "input_blur"),
    ("surprise", 1, "unknown model config field"),
])
def test_every_config_field_is_bounded(tmp_path, tiny_checkpoint, field, value, match):
    refused(crafted(tmp_path, tiny_checkpoint, setter("cfg", field, value=value)), match)


def test_every_config_field_has_a_rule():
    """A new ModelConfig field must come with its bounds."""
    assert set(ModelConfig.__dataclass_fields__) <= set(checkpoint_checks.CONFIG_RULES)


def test_multi_head_names_are_checked():
    rule = checkpoint_checks.CONFIG_RULES["heads"]
    assert rule(["score", "aesthetic"]) is None
    for bad in ([], ["score", "score"], ["a b"], "score", [f"h{i}" for i in range(17)]):
        assert rule(bad) is not None, bad


@pytest.mark.parametrize("change, match", [
    (setter("state_dict", value="not weights"), "has no weights"),
    (setter("format_version", value="1"), "format_version '1' is not a version number"),
    (setter("cfg", value="vnet_tiny"), "has no model config"),
    (setter("state_dict", f"{REG}.weight", value="a string"),
     f"{REG}.weight is a str, not a tensor"),
    (setter("state_dict", "unused.huge", value=torch.zeros(1).expand(1 << 28)),
     "unexpected unused.huge"),
    (setter("metrics", value={"hidden": torch.zeros(3)}), "tensor data outside its weights"),
    (setter("state_dict", f"{REG}.bias", value=torch.tensor([float("nan")])),
     rf"weight {REG}.bias is not finite \(NaN or infinity\)"),
    (setter("state_dict", f"{REG}.bias", value=torch.tensor([float("inf")])),
     f"{REG}.bias is not finite"),
    (setter("state_dict", f"{REG}.weight", value=torch.zeros(1, 99)),
     rf"weights do not match a 'vnet_tiny' model: {REG}.weight has shape \[1, 99\]"),
    (setter("state_dict", f"{REG}.weight", value=torch.zeros(1, 16, dtype=torch.int64)),
     f"{REG}.weight holds torch.int64"),
])
def test_malformed_payloads_are_one_line(tmp_path, tiny_checkpoint, change, match):
    refused(crafted(tmp_path, tiny_checkpoint, change), match)


def test_oversized_metadata_is_refused_before_it_is_unpickled(tmp_path, tiny_checkpoint,
                                                              monkeypatch):
    path = crafted(tmp_path, tiny_checkpoint, setter("notes", value="x" * 200_000))
    monkeypatch.setattr(checkpoint_checks, "MAX_PICKLE_BYTES", 100_000)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled"))
    refused(path, "metadata of 0 MB is too large")


def score(tmp_path, weights, *extra):
    lib = tmp_path / "lib"
    write_photo(lib / "a.jpg")
    write_photo(lib / "b.jpg", color=(0, 200, 0))
    db = tmp_path / "c.db"
    result = CliRunner().invoke(cli, ["score", str(lib), "--json", "-w", str(weights),
                                      "--cache", str(db), "--workers", "0", "-s", *extra],
                                catch_exceptions=False)
    assert "Traceback" not in result.output
    return result, db


@pytest.mark.parametrize("change, match", [
    (setter("cfg", "std", value=[0, 0, 0]), "model config std"),
    (setter("state_dict", f"{REG}.bias", value=torch.tensor([float("inf")])),
     f"{REG}.bias is not finite"),
])
def test_score_blames_the_checkpoint_not_every_photo(tmp_path, tiny_checkpoint, change, match):
    result, _ = score(tmp_path, crafted(tmp_path, tiny_checkpoint, change))
    assert result.exit_code == 1
    assert "skipped" not in result.stderr and "cannot decode" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: checkpoint ")
    assert match in result.stderr


def test_a_model_that_outputs_non_finite_scores_is_refused_and_nothing_is_cached(
        tmp_path, tiny_checkpoint, monkeypatch):
    from memocli.predictor import Predictor

    real = Predictor.forward

    def overflowing(self, x):  # finite weights can still overflow float32
        scores, pooled = real(self, x)
        return scores * float("inf"), pooled

    monkeypatch.setattr(Predictor, "forward", overflowing)
    result, db = score(tmp_path, tiny_checkpoint)
    assert result.exit_code == 1
    assert "is not finite (NaN or infinity); refused, nothing of it was saved" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"Error: checkpoint {tiny_checkpoint}: ")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 0


def test_a_valid_checkpoint_still_scores(tmp_path, tiny_checkpoint):
    result, _ = score(tmp_path, tiny_checkpoint)
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_config_rules_accept_every_registered_architecture():
    from memocli.registry import MODELS

    for cfg in MODELS.values():
        checkpoint_checks.check_config(cfg.to_dict(), "x.pt")
        assert dataclasses.asdict(cfg)  # a plain dataclass, as the rules assume
